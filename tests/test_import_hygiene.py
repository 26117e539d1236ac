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


def _import_graph(lazy: bool) -> dict[str, set[str]]:
    """``module -> modules it imports`` over core/ and tui/ (``lazy``: imports inside functions too)."""
    import ast

    modules = {}
    for folder in ("core", "tui"):
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            modules[".".join(["sd_explorer", *(parts[:-1] if parts[-1] == "__init__" else parts)])] = path

    def resolve(name: str) -> str | None:  # a name imported from a module resolves to the module
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        deps = set()
        for node in (ast.walk(tree) if lazy else tree.body):
            if isinstance(node, ast.Import):
                deps |= {resolve(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps |= {resolve(f"{node.module}.{a.name}") or resolve(node.module) for a in node.names}
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
    assert len(graph) > 60 and "sd_explorer.core.sampler" in graph["sd_explorer.core.grid_axes"]
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check itself
