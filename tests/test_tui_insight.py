"""Pilot tests: heat maps over the sweep cells, scrubbing the denoising timeline, the schedule view."""

from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import DataTable, Label

from tests.conftest import FASHION_DIR
from tests.test_tui_support import SIZE, make_app, sync, wait_for

PROMPT = "a photo of a sneaker"


def status(pane) -> str:
    return str(pane.query_one("#status", Label).render())


async def _sweep(pilot, app, attention: bool):
    pane = app.query_one("SweepPane")
    await wait_for(pilot, lambda: app.model is not None, what="model")
    await pilot.press("f3")
    if attention:
        await pilot.press("ctrl+o")
        assert pane.attention
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: pane.result is not None and pane.insight is not None, what="sweep")
    return pane


@sync
async def test_heat_maps_overlay_every_cell_with_a_legend(tmp_path):
    app = make_app(tmp_path, prompt=PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _sweep(pilot, app, attention=True)
        finals = [np.asarray(c.image) for c in pane.cells]
        assert pane.insight.maps.shape == (4, 77, 8, 8)
        await pilot.press("ctrl+t")  # the first prompt token: "a"
        assert pane.token == (1, "a")
        await pilot.press("ctrl+t", "ctrl+t", "ctrl+t", "ctrl+t")
        assert pane.token == (5, "sneaker")
        line = status(pane)
        assert line.startswith("heat 'sneaker' ") and "█" in line
        lo, hi = (float(v) for v in line.split("█")[0].split()[-1:] + line.split("█")[-1].split()[:1])
        assert 0 < lo < hi
        for cell, final in zip(pane.cells, finals):
            shown = np.asarray(cell.image)
            assert shown.shape == final.shape and not np.array_equal(shown, final)  # the overlay is on
        await pilot.press("ctrl+t")  # past the last token: overlay off
        assert pane.token is None
        assert all(np.array_equal(np.asarray(c.image), f) for c, f in zip(pane.cells, finals))


@sync
async def test_the_latents_pane_takes_the_generated_image_not_the_overlay(tmp_path):
    """Issue 27: with a heat map (or a timeline frame) over the cells, ctrl+g in the latents pane encoded what
    the cell showed (PSNR 14 dB); it takes the cell's own image."""
    app = make_app(tmp_path, prompt=PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _sweep(pilot, app, attention=True)
        await pilot.press(*["ctrl+t"] * 5)  # 'sneaker' overlaid on every cell
        cell = pane.cells[1]
        assert not np.array_equal(np.asarray(cell.image), np.asarray(pane.result.images[1]))
        cell.focus()
        await pilot.pause()
        latents = app.query_one("LatentsPane")
        await wait_for(pilot, lambda: latents.selected is not None, what="the selection")
        assert latents.selected[0] is pane.result.images[1]


@sync
async def test_picking_a_token_in_the_table_selects_its_heat(tmp_path):
    app = make_app(tmp_path, prompt=PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _sweep(pilot, app, attention=True)
        await pilot.press("f2")
        table = app.query_one("#token-table", DataTable)
        table.focus()
        table.move_cursor(row=5)
        await pilot.press("enter")
        assert pane.token == (5, "sneaker")
        await pilot.press("f3")
        assert status(pane).startswith("heat 'sneaker'")


@sync
async def test_without_attention_the_token_key_says_how(tmp_path):
    app = make_app(tmp_path, prompt=PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _sweep(pilot, app, attention=False)
        assert pane.insight.maps is None
        await pilot.press("ctrl+t")  # the token is picked; the pane says how to get its heat
        assert pane.token == (1, "a") and not status(pane).startswith("heat")
        assert any("ctrl+o turns them on" in str(n.message) for n in app.notices)


@sync
async def test_scrubbing_the_timeline(tmp_path):
    app = make_app(tmp_path, prompt=PROMPT, steps=3)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _sweep(pilot, app, attention=False)
        n = len(pane.insight.steps)  # PNDM: 3 steps are 4 model calls
        assert n == 4
        pane.cells[0].focus()
        await pilot.press("left")
        assert pane.step == n - 1 and status(pane).startswith(f"step {n}/{n} · t=")
        assert "σ=" in status(pane)
        await pilot.press(*["pageup"] * n)  # stops at the first step (pageup works whatever has focus)
        assert pane.step == 0 and status(pane).startswith(f"step 1/{n}")
        first = np.asarray(pane.cells[1].image)
        assert np.array_equal(first, pane.insight.x0[0, 1])  # the first step's x0 of that cell
        await pilot.press("x")
        assert np.array_equal(np.asarray(pane.cells[1].image), pane.insight.xt[0, 1]) and "x_t" in status(pane)
        await pilot.press("f7")  # the schedule marks the scrubbed step's timestep
        await wait_for(pilot, lambda: app.screen.marked == pane.insight.timesteps[0], what="marker")
        await pilot.press("escape")
        pane.cells[0].focus()
        await pilot.press(*["right"] * n)  # past the last step: the decoded images again
        assert pane.step is None and pane.cells[1].image.size == pane.result.images[1].size


@sync
async def test_schedule_view_marks_the_current_step(tmp_path):
    app = make_app(tmp_path, prompt=PROMPT, data=str(FASHION_DIR))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="model")
        await pilot.press("f7")
        screen = app.screen
        assert type(screen).__name__ == "ScheduleScreen"
        assert [s.name for s in screen.schedules] == ["tiny (scaled_linear)", "Fashion DDPM (linear)"]
        assert screen.marked is None
        sweep = app.query_one("SweepPane")
        sweep.current_t = 501.0  # what a running sweep does every step: the app's timestep follows
        sweep.post_timestep()
        await wait_for(pilot, lambda: screen.marked == 501.0, what="marker")
        assert app.timestep == 501.0
        if FASHION_DIR.is_dir():
            await wait_for(pilot, lambda: screen.query_one("#noising").image is not None, what="noising row")
        await pilot.press("escape")
        assert type(app.screen).__name__ != "ScheduleScreen"


# ---------------------------------------------------------------- snapshots (80x24, tiny, 2 steps)
class TestInsightSnapshots:
    @staticmethod
    def _app(tmp_path, **kw):
        from tests.test_tui_snapshots import _app

        return _app(tmp_path, prompt=PROMPT, **kw)

    def test_sneaker_heat_over_the_sweep(self, snap_compare, tmp_path):
        async def run_before(pilot) -> None:
            from tests.test_tui_snapshots import _model_ready

            await _model_ready(pilot)
            await pilot.press("f3", "ctrl+o", "ctrl+r")
            pane = pilot.app.query_one("SweepPane")
            await wait_for(pilot, lambda: pane.insight is not None, what="sweep")
            await pilot.press(*["ctrl+t"] * 5)
            pilot.app.set_focus(None)
            pilot.app.clear_notifications()

        assert snap_compare(self._app(tmp_path), terminal_size=SIZE, run_before=run_before)

    def test_timeline_scrubbed_to_the_first_step(self, snap_compare, tmp_path):
        async def run_before(pilot) -> None:
            from tests.test_tui_snapshots import _model_ready

            await _model_ready(pilot)
            await pilot.press("f3", "ctrl+r")
            pane = pilot.app.query_one("SweepPane")
            await wait_for(pilot, lambda: pane.insight is not None, what="sweep")
            pane.cells[0].focus()
            await pilot.press(*["left"] * 9)
            pilot.app.set_focus(None)

        assert snap_compare(self._app(tmp_path), terminal_size=SIZE, run_before=run_before)

    def test_schedule_view(self, snap_compare, tmp_path):
        if not FASHION_DIR.is_dir():  # the snapshot shows the noising row, which needs the data
            pytest.skip(f"no Fashion-MNIST data at {FASHION_DIR}")

        async def run_before(pilot) -> None:
            from tests.test_tui_snapshots import _model_ready

            await _model_ready(pilot)
            await pilot.press("f7")
            screen = pilot.app.screen
            sweep = pilot.app.query_one("SweepPane")
            sweep.current_t = 501.0
            sweep.post_timestep()
            await wait_for(pilot, lambda: screen.marked == 501.0, what="marker")
            await wait_for(pilot, lambda: screen.query_one("#noising").image is not None, what="noising row")

        assert snap_compare(self._app(tmp_path, data=str(FASHION_DIR)), terminal_size=SIZE, run_before=run_before)
