"""Pilot tests of the exercises pane (pane 5) on ``tiny`` (CPU, 2 steps), one SDXL-shaped model, one snapshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from textual.widgets import Input, Label, Select

from sd_explorer.core.errors import UserError
from tests.test_tui_snapshots import _app, _model_ready
from tests.test_tui_support import SIZE, make_app, sync, wait_for, write_gradient
from sd_explorer.tui.progress import StepPreview
from sd_explorer.tui.panes.exercises import EXAMPLES, parse_values


async def _set_axis(pilot, axis: str, values: str, **fields: str) -> None:
    """Open pane 5, pick ``axis``, type ``values`` and any other fields (by id)."""
    pane = pilot.app.query_one("ExercisesPane")  # ids like #seed and #status repeat across panes
    await pilot.press("f6")
    pane.query_one("#axis", Select).value = axis
    await pilot.pause()
    pane.query_one("#values", Input).value = values
    for name, value in fields.items():
        pane.query_one(f"#{name}", Input).value = value
    await pilot.pause()


async def _run(pilot):
    pane = pilot.app.query_one("ExercisesPane")
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: pane.result is not None, what="exercise sweep")
    return pane


def _messages(app) -> list[str]:
    return [n.message for n in app.notices]


def test_parse_values_per_axis():
    assert parse_values("negative", "|white hat|hat") == ["", "white hat", "hat"]
    assert parse_values("strength", "0.3, 0.6,0.9") == [0.3, 0.6, 0.9]
    assert parse_values("original_size", "256x256, 1024x1024") == [(256, 256), (1024, 1024)]
    assert parse_values("crop", "0x0,256x0") == [(0, 0), (256, 0)]
    for axis, text, match in [("negative", "  ", "no values"), ("color_scale", "a,b", "numbers"),
                              ("crop", "12", "not AxB")]:
        with pytest.raises(UserError, match=match):
            parse_values(axis, text)
    assert all(parse_values(axis, example) for axis, example in EXAMPLES.items())


@sync
async def test_negative_prompt_axis_renders_one_cell_per_negative_and_saves(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _set_axis(pilot, "negative", "|white hat|hat", guidance="5")
        assert app.focused is app.query_one("ExercisesPane #values", Input)
        pane = await _run(pilot)
        assert [c.caption for c in pane.cells] == ["5 · no negative", "5 · neg 'white hat'", "5 · neg 'hat'"]
        assert [r.negative_prompt for r in pane.result.rows] == ["", "white hat", "hat"]
        images = [np.asarray(c.image, dtype=np.float32) for c in pane.cells]
        assert all(c.image.size == pane.result.images[0].size for c in pane.cells)
        assert np.abs(images[0] - images[1]).mean() > 0  # the negative prompt changes the image
        assert "done: negative" in str(pane.query_one("#status", Label).render())
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: pane.last_saved is not None, what="saved grid")
        saved = Path(pane.last_saved)
        assert saved.parent == tmp_path and saved.is_file()
        with Image.open(saved) as png:
            params = png.info["parameters"]
        assert "CFG scale: 5" in params and "Grid: 5 · no negative | 5 · neg 'white hat'" in params


@sync
async def test_strength_sweep_from_an_image_file(tmp_path):
    image = write_gradient(tmp_path / "start.png")
    app = make_app(tmp_path, steps=4)
    async with app.run_test(size=SIZE) as pilot:
        await _set_axis(pilot, "strength", "0.5, 1.5", init=str(image))
        await pilot.press("ctrl+r")  # 1.5 is out of range: a notification, no run
        await wait_for(pilot, lambda: app.notices, what="bad strength")
        assert any("strength must be in (0, 1]" in m for m in _messages(app))
        pane = app.query_one("ExercisesPane")
        assert pane.result is None and not app.model_worker.busy("exercise")
        pane.query_one("#values", Input).value = "0.25, 1"
        seen = []
        shown = pane.job_progress

        def record(ev):  # which cell each sequential run's preview lands in
            shown(ev)
            if isinstance(ev.payload, StepPreview):
                seen.append(pane.running_cells)

        pane.job_progress = record
        await _run(pilot)
        assert [c.caption for c in pane.cells] == ["strength 0.25", "strength 1"]
        assert [v.strength for v in pane.result.variants] == [0.25, 1.0]
        assert seen[0] == [0] and seen[-1] == [1]
        # strength 0.25 keeps the start image's layout; 1 ignores it (pure noise)
        start = np.asarray(Image.open(image).convert("RGB").resize(pane.cells[0].image.size), dtype=np.float32)
        low, high = (np.asarray(c.image, dtype=np.float32) for c in pane.cells)
        assert np.abs(low - start).mean() < np.abs(high - start).mean()
        pane.query_one("#init", Input).value = ""
        with pytest.raises(UserError, match="latents pane"):  # no file and nothing encoded yet
            pane.settings()
        # without a file, a strength sweep starts from the latents pane's image
        await pilot.press("f4")
        latents = app.query_one("LatentsPane")
        latents.query_one("#path", Input).value = str(image)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: latents.report is not None, what="round trip")
        await pilot.press("f6")
        pane.query_one("#values", Input).value = "0.5"
        pane.result = None
        await _run(pilot)
        assert pane.result.settings.init_image is latents.report.image
        assert [c.caption for c in pane.cells] == ["strength 0.5"]


@sync
async def test_colour_scale_sweep_pulls_towards_the_target(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        # tiny draws greyscale clothing: a light grey is a target it can reach (a blue one it cannot)
        await _set_axis(pilot, "color_scale", "0, 60", color="#c0c0c0")
        pane = await _run(pilot)
        assert [c.caption for c in pane.cells] == ["colour x0", "colour x60"]
        plain, steered = (np.asarray(c.image, dtype=np.float32) / 255 for c in pane.cells)
        target = np.array([0.75, 0.75, 0.75])
        assert np.abs(steered - target).mean() < np.abs(plain - target).mean()
        pane.query_one("#color", Input).value = ""
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("target colour" in m for m in _messages(app)), what="no colour")


@sync
async def test_sdxl_axis_on_tiny_is_a_one_line_notification(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="model")
        await _set_axis(pilot, "original_size", "256x256, 1024x1024")
        await pilot.press("ctrl+r")
        pane = app.query_one("ExercisesPane")
        await wait_for(pilot, lambda: "failed" in str(pane.query_one("#status", Label).render()), what="failure")
        messages = [m for m in _messages(app) if "SDXL" in m]
        assert messages == ["the original size axis needs an SDXL model: load one with --model."]
        assert app.model_worker.runner.alive and pane.result is None


@sync
async def test_original_size_sweep_on_an_sdxl_shaped_model(tmp_path):
    from tests.sd_factory import save_sdxl_pipeline

    folder = save_sdxl_pipeline(tmp_path / "xl")
    app = make_app(tmp_path, model=str(folder))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="SDXL-shaped model")
        await _set_axis(pilot, "original_size", "256x256, 1024x1024")
        pane = await _run(pilot)
        assert [c.caption for c in pane.cells] == ["7.5 · orig 256x256", "7.5 · orig 1024x1024"]
        assert [r.original_size for r in pane.result.rows] == [(256, 256), (1024, 1024)]
        first, second = (np.asarray(c.image, dtype=np.float32) for c in pane.cells)
        assert np.abs(first - second).mean() > 0  # the size conditioning reaches the UNet


class TestExercisesPane:
    def test_finished_negative_prompt_sweep(self, snap_compare, tmp_path):
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            await pilot.press("f6", "ctrl+r")
            pane = pilot.app.query_one("ExercisesPane")
            await wait_for(pilot, lambda: pane.result is not None, what="exercise sweep")
            pilot.app.set_focus(None)

        assert snap_compare(_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_headless_screenshot_of_the_exercises_pane(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "exercises.svg"
    config = tmp_path / "config.toml"
    config.write_text("steps = 2\n")  # the app has no --steps flag; the settings file has
    code = (
        "import sys; from sd_explorer.tui.entry import main; "
        f"sys.exit(main(['--screenshot', {str(out)!r}, '--pane', 'exercises', '--config', {str(config)!r},"
        f" '--device', 'cpu', '--out', {str(tmp_path)!r}]))"
    )
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    svg = out.read_text()
    assert "f6&#160;Exercises" in svg or "f6 Exercises" in svg  # the tab names its key
    assert "no&#160;negative" in svg or "no negative" in svg  # autorun ran the default negative-prompt sweep


@sync
async def test_three_values_wait_in_three_cells(tmp_path):
    """Issue 27, item 5: "the exercises pane shows 6 waiting cells for 3 values". From the pane's first
    showing, through a run's previews, to its result, and on a second run with fewer values: one cell a value."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        pane = app.query_one("ExercisesPane")
        await pilot.pause()
        assert [c.caption for c in pane.cells] == ["waiting"] * 3
        await _set_axis(pilot, "color_scale", "0, 20, 60", color="#c0c0c0")
        previews = []
        shown = pane.grid_progress

        def count(payload):
            if isinstance(payload, StepPreview):
                previews.append(len(pane.cells))
            return shown(payload)

        pane.grid_progress = count
        pane = await _run(pilot)
        assert previews and set(previews) == {3} and len(pane.query("ExerciseCell")) == 3
        pane.query_one("#values", Input).value = "0, 60"
        pane.result = None
        await _run(pilot)
        await pilot.pause()
        assert [c.caption for c in pane.cells] == ["colour x0", "colour x60"] and len(pane.query("ExerciseCell")) == 2
