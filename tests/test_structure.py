"""The app's seams (issue 22): job kinds and results are typed, panes reach the app through one typed
context, the panes are listed once, and no file of tui/ outgrows 400 lines."""

from __future__ import annotations

import ast
import dataclasses
import re

from tests.conftest import ROOT

TUI = ROOT / "tui"


def _tui_files():
    return sorted(TUI.rglob("*.py"))


def _is_kind(node: ast.AST) -> bool:
    """``kind``, ``x.kind``, ``x.job.kind``, ``x.error_kind``: an expression naming a kind of something."""
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return name == "kind" or name.endswith("_kind")


def _is_text(node: ast.AST) -> bool:
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_text(e) for e in node.elts)
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def kind_string_comparisons(source: str) -> list[int]:
    """Lines comparing a kind with a string (``ev.job.kind == "train"``, ``kind in ("a", "b")``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_is_kind(o) for o in operands) and any(_is_text(o) for o in operands):
                lines.append(node.lineno)
    return lines


def test_the_kind_check_itself_finds_string_comparisons():
    src = 'if ev.job.kind == "train": pass\nif kind in ("a", "b"): pass\nif ev.error_kind != "x": pass\n' \
          'if ev.job.kind is JobKind.TRAIN: pass\nif ev.cancelled: pass\n'
    assert kind_string_comparisons(src) == [1, 2, 3]


def test_no_job_kind_is_compared_as_a_string_in_tui():
    found = []
    for path in _tui_files():
        text = path.read_text()
        found += [f"{path.relative_to(ROOT)}:{n}" for n in kind_string_comparisons(text)]
        found += [f"{path.relative_to(ROOT)}:{i} (text)" for i, line in enumerate(text.splitlines(), 1)
                  if re.search(r"kind\s*(==|!=)", line)]
    assert found == [], "compare JobKind members by identity (kind is JobKind.TRAIN), results by class"


def test_no_attr_defined_ignores_in_tui():
    found = [f"{p.relative_to(ROOT)}:{i}" for p in _tui_files()
             for i, line in enumerate(p.read_text().splitlines(), 1) if "type: ignore[attr-defined]" in line]
    assert found == [], "read the app through tui.app_context (self.ctx in a pane)"


def test_every_tui_file_is_at_most_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in _tui_files() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_every_job_kind_has_its_name_and_frozen_result_classes():
    from sd_explorer.tui import job_results
    from sd_explorer.tui.job_kinds import JobKind, work_name
    from sd_explorer.tui.job_results import JobResult

    assert {k.value for k in JobKind} == {"load", "train", "fashion-show", "fashion-noise", "fashion-save",
                                          "sweep", "exercise", "latents"}
    for kind in JobKind:
        assert kind.work_name and work_name(kind) == kind.work_name and JobKind(kind.value) is kind
        assert kind.results, f"{kind} has no result class"
        for cls in kind.results:
            assert issubclass(cls, JobResult) and dataclasses.is_dataclass(cls)
            assert cls.__dataclass_params__.frozen, f"{cls.__name__} is not frozen"
    declared = {c for c in vars(job_results).values() if isinstance(c, type) and issubclass(c, JobResult)}
    used = {cls for kind in JobKind for cls in kind.results}
    assert declared - {JobResult} == used, "a result class no job kind returns"
    assert work_name("x") == "x"  # a kind from elsewhere (core's tests) is called by its own name
    assert f"{JobKind.TRAIN} cancelled." == "train cancelled."  # notifications read as before


def test_one_pane_registry_feeds_the_tabs_keys_palette_and_settings():
    from sd_explorer.tui.app import ExplorerApp
    from sd_explorer.tui.commands import pane_classes
    from sd_explorer.tui.config import PANES as PANE_IDS
    from sd_explorer.tui.panes.registry import PANES, pane_spec

    assert tuple(p.id for p in PANES) == PANE_IDS  # --pane / the settings file accept exactly these
    shown = [(b.key, b.action) for b in ExplorerApp.BINDINGS if b.action.startswith("show_pane(")]
    assert shown == [(p.key, f"show_pane('{p.id}')") for p in PANES]
    assert [(t, i, c) for t, i, c in pane_classes()] == [(p.title, p.id, p.cls) for p in PANES]
    assert pane_spec("sweep").tab_title == "f3 Sweep" and pane_spec("sweep").cls.pane_name == "sweep"
    assert all(p.cls.pane_name == p.id for p in PANES if hasattr(p.cls, "pane_name"))


def test_the_app_is_an_app_context(tmp_path):
    from sd_explorer.tui.app_context import AppContext
    from tests.test_tui_support import make_app

    app = make_app(tmp_path)
    try:
        assert isinstance(app, AppContext)
        missing = [name for name in AppContext.__annotations__ if not hasattr(app, name)]
        assert missing == []
    finally:
        app.model_worker.shutdown()


def test_only_the_sweep_pane_tells_the_app_its_timestep():
    from sd_explorer.tui.panes.job_pane import JobPane
    from sd_explorer.tui.panes.sweep import SweepPane
    from sd_explorer.tui.panes.sweep_insight import InsightMixin

    assert "post_timestep" in vars(SweepPane)
    assert not hasattr(InsightMixin, "post_timestep") and not hasattr(JobPane, "post_timestep")


def test_grid_job_reports_steps_batches_and_cells_and_hands_steps_to_on_step():
    from types import SimpleNamespace

    from sd_explorer.tui.panes.grid import GridPane, GridReporting
    from sd_explorer.tui.progress import BatchStarted, CellsDone, StepPreview

    sent, heard = [], []
    job = SimpleNamespace(progress=sent.append)
    reporting = GridPane.grid_job(None, job, on_step=lambda info: heard.append((info.index, len(sent))))
    assert isinstance(reporting, GridReporting)
    info = SimpleNamespace(index=3, total=8, timestep=500.0, preview=["p"])
    reporting.on_batch([0, 1])
    reporting.callback(info)
    reporting.on_cells([0, 1], SimpleNamespace(images=["a", "b"]))
    assert sent == [BatchStarted((0, 1)), StepPreview(3, 8, 500.0, ["p"]), CellsDone((0, 1), ["a", "b"])]
    assert heard == [(3, 1)]  # on_step heard the step before its preview was sent
    plain = GridPane.grid_job(None, job)  # without on_step: the previews alone
    plain.callback(info)
    assert sent[-1] == StepPreview(3, 8, 500.0, ["p"])


def test_core_atomic_is_the_one_writer_that_renames():
    """Every file and folder the package publishes goes through ``core/atomic.py`` (issue 22, item 5)."""
    found = [f"{p.relative_to(ROOT)}:{i}" for folder in ("core", "tui") for p in sorted((ROOT / folder).rglob("*.py"))
             if p != ROOT / "core" / "atomic.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"os\.(replace|rename)\(", line)]
    assert found == []
