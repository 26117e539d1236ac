"""core is a library: importing all of it must never pull in the UI (textual, rich, tui)."""

import subprocess
import sys

from tests.conftest import ROOT

MODULES = ["sd_explorer.core", "sd_explorer.core.cli", "sd_explorer.core.models", "sd_explorer.core.sampler", "sd_explorer.core.vae", "sd_explorer.core.outputs", "sd_explorer.core.tokens",
           "sd_explorer.core.clip_vocab", "sd_explorer.core.schedulers", "sd_explorer.core.results", "sd_explorer.core.preview", "sd_explorer.core.devices", "sd_explorer.core.errors"]


def test_core_never_imports_the_ui():
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        "import pkgutil, sd_explorer.core as core\n"
        "for info in pkgutil.walk_packages(core.__path__, 'sd_explorer.core.'):\n"
        "    if not info.name.endswith('__main__'): importlib.import_module(info.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'rich_pixels') or m.startswith('sd_explorer.tui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core imported UI modules: {out.stdout.strip()}"


def test_importing_core_is_cheap():
    code = "import sys, sd_explorer.core; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def _modules(folders: tuple[str, ...]):
    """``(module -> its file, resolve)`` over ``folders``; ``resolve(name)``: the module a dotted name is in (a name
    imported from a module resolves to the module), or None outside them."""
    modules = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            modules[".".join(["sd_explorer", *(parts[:-1] if parts[-1] == "__init__" else parts)])] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    return modules, resolve


def _import_graph(lazy: bool) -> dict[str, set[str]]:
    """``module -> modules it imports`` over core/ and tui/ (``lazy``: imports inside functions too)."""
    import ast

    modules, resolve = _modules(("core", "tui"))
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps = set()
        for node in (ast.walk(tree) if lazy else tree.body):
            if isinstance(node, ast.Import):
                deps |= {resolve(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: `from ..x import y` inside the package
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                if base.startswith("sd_explorer"):
                    deps |= {resolve(f"{base}.{a.name}") or resolve(base) for a in node.names}
        graph[module] = deps - {None, module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycles():
    """No two modules import each other, directly or round a loop, not even inside functions (issue 14)."""
    graph = _import_graph(lazy=True)
    assert len(graph) > 60 and "sd_explorer.core.sampler" in graph["sd_explorer.core.grid_run"]
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check itself


def test_the_package_imports_itself_relatively():
    """Inside core/, tui/ and assets/ every import of the package is relative (``from ..errors import UserError``), so
    editors and static tools follow it to the file on disk; ``sd_explorer.`` exists only once installed (issue 22)."""
    import ast

    absolute = []
    for folder in ("core", "tui", "assets"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                absolute += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "sd_explorer"]
    assert absolute == []
    graph = _import_graph(lazy=False)
    assert "sd_explorer.core.errors" in graph["sd_explorer.core.sampler"]  # relative edges are in the graph
    assert "sd_explorer.core.jobs" in graph["sd_explorer.tui.worker"]


#: the request layer: what a pane or the CLI parses, checks and captions before any model loads (issue 22)
REQUEST_MODULES = ["sd_explorer.core.settings", "sd_explorer.core.grid_axes", "sd_explorer.core.guidance",
                   "sd_explorer.core.batch_rows", "sd_explorer.core.inputs", "sd_explorer.core.schedulers",
                   "sd_explorer.core.chunks", "sd_explorer.core.model_folder", "sd_explorer.core.commands"]


def test_the_request_layer_needs_no_torch():
    """Settings, grid axes, guidance checks and captions import without torch (so panes import them at the
    top); the modules that run things (grid_run, guided_batch, sampler) do import it."""
    code = (
        "import importlib, sys\n"
        f"for name in {REQUEST_MODULES!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers')))\n"
        "import sd_explorer.core.grid_run\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out.stdout


# ---------------------------------------------------------------- which imports stay inside functions (issue 22)
#: modules every command or the app passes through before it knows what it needs: they import inside functions so
#: that ``--help`` answers at once and the ctrl+c guard (``core.interrupt``) is in place before anything loads
ENTRY_MODULES = {"sd_explorer.core.cli": "the parser and main", "sd_explorer.core.commands": "each subcommand",
                 "sd_explorer.tui.entry": "the app's main", "sd_explorer.core.__main__": "python -m",
                 "sd_explorer.tui.__main__": "python -m"}
#: third-party packages whose import loads their submodules too (``torch.nn.functional`` comes with ``torch``)
EAGER_PACKAGES = {"torch", "numpy"}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _imports() -> dict[str, tuple[set[str], list[tuple[int, set[str], set[str], bool]]]]:
    """Per module of core/, tui/, assets/: ``(top, lazy)``. ``top``: what it imports at module level (internal
    modules, and third-party modules as written; ``if TYPE_CHECKING`` blocks are not imports); ``lazy``: per
    import inside a function, ``(line, internal modules, third-party modules, an ImportError fallback)``."""
    import ast

    modules, resolve = _modules(("core", "tui", "assets"))
    found = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        typing_only = {id(m) for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                       for m in ast.walk(n)}
        top_level = {id(m) for n in tree.body if id(n) not in typing_only
                     for m in ([n] + (list(ast.walk(n)) if isinstance(n, (ast.If, ast.Try)) else []))}
        top, lazy = set(), []
        for node in ast.walk(tree):
            if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                names = [f"{base}.{a.name}" for a in node.names] if base.startswith("sd_explorer") else [base]
            internal = {resolve(n) for n in names if n.startswith("sd_explorer")} - {None, module}
            external = {n for n in names if not n.startswith("sd_explorer")}
            if id(node) in top_level:
                top |= internal | external
                continue
            fallback, up = False, node
            while id(up) in parents:
                up = parents[id(up)]
                fallback |= isinstance(up, ast.Try) and any(
                    h.type is not None and "ImportError" in ast.unparse(h.type) for h in up.handlers)
            lazy.append((node.lineno, internal, external, fallback))
        found[module] = (top, lazy)
    return found


def _deferred(found):
    """``deferred(module, internal, external)``: the third-party modules an import inside ``module`` loads that
    ``module``'s own top-level imports do not (the standard library does not count: it is cheap and mostly loaded)."""
    import functools

    @functools.cache
    def loads(module: str) -> frozenset[str]:
        out = set()
        for name in found[module][0]:
            if name.startswith("sd_explorer"):
                out |= loads(name)
            elif name.split(".")[0] not in STDLIB:
                out.add(name)
        return frozenset(out)

    def covered(name: str, have: frozenset[str]) -> bool:
        parts = name.split(".")
        return name in have or (parts[0] in EAGER_PACKAGES and any(".".join(parts[:i]) in have for i in range(1, len(parts))))

    def deferred(module: str, internal: set[str], external: set[str]) -> set[str]:
        have = loads(module)
        wanted = {n for m in internal for n in loads(m)} | {n for n in external if n.split(".")[0] not in STDLIB}
        return {n for n in wanted if not covered(n, have)}

    return deferred


def test_imports_stay_inside_functions_only_to_defer_a_library():
    """An import inside a function is there for start-up time, or it belongs at the top of the module: it must
    defer a third-party module (torch, diffusers, PIL's PNG writer...) that its module does not load already, or be
    an ``ImportError`` fallback, or sit in one of the ENTRY_MODULES. Everything else imports at the top, where
    editors, ``farm-studio look`` and readers see it."""
    found = _imports()
    deferred = _deferred(found)
    misplaced = [f"{module}:{line} defers nothing ({', '.join(sorted(internal | external))})"
                 for module, (_, lazy) in found.items() if module not in ENTRY_MODULES
                 for line, internal, external, fallback in lazy
                 if not fallback and not deferred(module, internal, external)]
    assert misplaced == [], "move these imports to the top of their module:\n" + "\n".join(misplaced)
    # the rule itself: torch.nn.functional comes with the sampler's torch; settings would defer torch; so would
    # the prompt pane importing the sampler
    assert "torch" in found["sd_explorer.core.sampler"][0]
    assert not deferred("sd_explorer.core.sampler", set(), {"torch.nn.functional", "json"})
    assert deferred("sd_explorer.core.settings", set(), {"torch"}) == {"torch"}
    assert deferred("sd_explorer.tui.panes.tokens", {"sd_explorer.core.sampler"}, set()) >= {"torch"}
    assert set(ENTRY_MODULES) <= set(found)
