"""SVG snapshots of each pane in a deterministic state (tiny, CPU fp32, seed 0, 2 steps, 80x24).

Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at ``snapshot_report.html`` before committing the new SVGs.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.test_tui_support import SIZE, make_app, wait_for

LARGE = (120, 40)


def _app(tmp_path, **kw):
    """The app of every snapshot (outputs and the worker log under the test's ``tmp_path``)."""
    return make_app(tmp_path, **kw)


async def _model_ready(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.model is not None, what="model")
    await wait_for(pilot, lambda: app.query_one("TokensPane").tokenizer is not None, what="tokenizer")
    for field in app.query(Input):  # a blinking cursor would make the snapshot depend on timing
        field.cursor_blink = False


class TestTokensPane:
    def test_prompt_and_tokens(self, snap_compare, tmp_path):
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            await pilot.press(*", detailed")

        assert snap_compare(_app(tmp_path), terminal_size=SIZE, run_before=run_before)

    def test_prompt_beyond_the_window(self, snap_compare, tmp_path):
        """90 tokens: a second 75-token chunk with its own start/end; the running count reads n/150."""
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            pilot.app.query_one("#prompt", Input).value = "a red cat " * 30
            await pilot.pause()
            pilot.app.query_one("#token-table").scroll_to(y=70, animate=False)
            await pilot.pause()

        assert snap_compare(_app(tmp_path), terminal_size=SIZE, run_before=run_before)

    def test_weighted_prompt(self, snap_compare, tmp_path):
        """A1111 weights in the weight column; the unclosed bracket's reading on the count line."""
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            pilot.app.query_one("#prompt", Input).value = "a (red:1.3) ((collie)) in a [top hat], (sunset"
            await pilot.pause()

        assert snap_compare(_app(tmp_path), terminal_size=(100, 24), run_before=run_before)

    def test_prompt_edit(self, snap_compare, tmp_path):
        """``[from:to:when]``: each segment's tokens under a row naming its steps; the count line per segment."""
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            pilot.app.query_one("#prompt", Input).value = "a photo of [a sneaker:an ankle boot:0.5]"
            await pilot.pause()

        assert snap_compare(_app(tmp_path, steps=25), terminal_size=SIZE, run_before=run_before)


class TestSweepPane:
    @pytest.mark.parametrize("size", [SIZE, LARGE])
    def test_finished_sweep(self, snap_compare, tmp_path, size):
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            await pilot.press("f3", "ctrl+r")
            pane = pilot.app.query_one("SweepPane")
            await wait_for(pilot, lambda: pane.result is not None, what="sweep")
            pilot.app.set_focus(None)

        assert snap_compare(_app(tmp_path), terminal_size=size, run_before=run_before)


    def test_three_by_two_grid(self, snap_compare, tmp_path):
        """X: guidance scale 1, 4, 12; Y: seed 1, 2 — one batch, captions name both values."""
        from textual.widgets import Select

        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            await pilot.press("f3")
            pilot.app.query_one("#scales", Input).value = "1, 4, 12"
            pilot.app.query_one("#y-axis", Select).value = "seed"
            pilot.app.query_one("#y-values", Input).value = "1-2"
            await pilot.press("ctrl+r")
            pane = pilot.app.query_one("SweepPane")
            await wait_for(pilot, lambda: pane.result is not None, what="grid")
            pilot.app.set_focus(None)
            for field in pilot.app.query(Input):
                field.cursor_blink = False

        assert snap_compare(_app(tmp_path), terminal_size=(100, 32), run_before=run_before)

    def test_queued_behind_other_work(self, snap_compare, tmp_path):
        """The status line names what the sweep waits for (here: a running training job)."""
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            pilot.app.model_worker.submit("train", lambda job: job.cancel.wait(120))  # stopped at exit
            await pilot.press("f3", "ctrl+r")
            pilot.app.set_focus(None)

        assert snap_compare(_app(tmp_path), terminal_size=SIZE, run_before=run_before)


class TestLatentsPane:
    def test_round_trip_of_the_sweep_image(self, snap_compare, tmp_path):
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            await pilot.press("f3", "ctrl+r")
            sweep = pilot.app.query_one("SweepPane")
            await wait_for(pilot, lambda: sweep.result is not None, what="sweep")
            await pilot.press("f4", "ctrl+g")
            pane = pilot.app.query_one("LatentsPane")
            await wait_for(pilot, lambda: pane.report is not None, what="round trip")
            pilot.app.set_focus(None)

        assert snap_compare(_app(tmp_path), terminal_size=SIZE, run_before=run_before)


class TestTrainingPane:
    @pytest.mark.parametrize("size", [SIZE, LARGE])
    def test_before_any_run(self, snap_compare, tmp_path, fashion_dir, size):
        """Labelled fields, the CPU default and its reason, the shipped model's scored samples, the noising row."""
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            pilot.app.query_one("TrainingPane").sample_steps = 5
            await pilot.press("f5")  # shows the shipped model's samples (if it is installed)
            await wait_for(pilot, lambda: not pilot.app.model_worker.busy(), what="noising row, shipped model")
            pilot.app.clear_notifications()  # a missing-file message would hold a machine's path
            pilot.app.query_one("#data", Input).value = "../shared/data/fashion-mnist-8k"  # not this machine's path
            pilot.app.set_focus(None)

        assert snap_compare(_app(tmp_path, data=str(fashion_dir)), terminal_size=size, run_before=run_before)


class TestExercisesPane:
    @pytest.mark.parametrize("size", [SIZE, LARGE])
    def test_labelled_fields_and_the_prompt(self, snap_compare, tmp_path, size):
        """Every field labelled in its border, tiny-friendly defaults, the prompt the exercise runs."""
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            await pilot.press("f6")
            await pilot.pause()
            pilot.app.set_focus(None)

        assert snap_compare(_app(tmp_path), terminal_size=size, run_before=run_before)


class TestHelpScreen:
    def test_keys(self, snap_compare, tmp_path):
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            await pilot.press("f1")

        assert snap_compare(_app(tmp_path), terminal_size=SIZE, run_before=run_before)


class TestSdxlTokens:
    @pytest.mark.parametrize("size", [(160, 24), (100, 24)])
    def test_two_tokenizers_side_by_side(self, snap_compare, tmp_path, size):
        """An SDXL-shaped model: CLIP ViT-L and OpenCLIP bigG tables side by side (the header names the folder);
        narrower than 150 columns, one above the other, so every column of both stays whole."""
        from tests.sd_factory import save_sdxl_pipeline

        folder = save_sdxl_pipeline(tmp_path / "sdxl-test")

        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            pilot.app.query_one("#prompt", Input).value = "a collie in a top hat"
            await wait_for(pilot, lambda: len(pilot.app.query_one("TokensPane").breakdowns) == 2, what="tables")
            await pilot.pause()

        app = _app(tmp_path, model=str(folder), prompt="")
        assert snap_compare(app, terminal_size=size, run_before=run_before)


class TestSdxlRefiner:
    def test_sweep_through_base_and_refiner(self, snap_compare, tmp_path):
        """SDXL base + refiner: the header names the hand-off, the cells are refined runs."""
        from tests.sd_factory import save_sdxl_pipeline, save_sdxl_refiner_pipeline

        base = save_sdxl_pipeline(tmp_path / "sdxl-base")
        refiner = save_sdxl_refiner_pipeline(tmp_path / "sdxl-refiner")

        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            await pilot.press("f3", "ctrl+r")
            pane = pilot.app.query_one("SweepPane")
            await wait_for(pilot, lambda: pane.result is not None, what="refined sweep")
            pilot.app.set_focus(None)

        app = _app(tmp_path, model=str(base), refiner=str(refiner), refiner_at=0.5, steps=4,
                   prompt="a collie in a top hat")
        assert snap_compare(app, terminal_size=(100, 24), run_before=run_before)
