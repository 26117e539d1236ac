"""Branch from the timeline (``tui.panes.sweep_branch``): ``b`` on a scrubbed cell re-runs the sweep with
``[old:new:k+1]``; the branch's first k+1 steps are the sweep's own, to the bit, and then it changes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from textual.widgets import Input, Label

from sd_explorer.core.errors import UserError
from sd_explorer.tui.panes.sweep_branch import branch_prompt
from tests.test_tui_support import SIZE, make_app, sync, wait_for

OLD, NEW = "a photo of a sneaker", "a photo of an ankle boot"


def status(pane) -> str:
    return str(pane.query_one("#status", Label).render())


def test_the_branch_prompt_keeps_the_old_text_for_k_steps_and_refuses_in_one_line():
    assert branch_prompt(OLD, NEW, 3) == f"[{OLD}:{NEW}:3]"
    assert branch_prompt("a (red:1.2) [cat]", "a dog", 2) == "[a (red:1.2) [cat]:a dog:2]"  # weights inside are fine
    for old, new, what in [(OLD, OLD + " ", "still holds"), ("[a:b:0.5]", "c", "already has a prompt edit"),
                           (OLD, "[a:b:2]", "already has a prompt edit"), ("a: b", "c", "breaks the edit")]:
        with pytest.raises(UserError, match=what) as err:
            branch_prompt(old, new, 2)
        assert "\n" not in str(err.value)


def test_a_branch_equals_the_sweep_for_the_kept_steps_on_tiny():
    """Same seed, same batch: the latents after each kept step are the sweep's exactly; the next step differs."""
    from sd_explorer.core.grid_axes import Axis
    from sd_explorer.core.grid_run import run_grid
    from sd_explorer.core.models import load_model
    from sd_explorer.core.settings import SampleSettings
    from sd_explorer.core.timeline import Timeline

    model = load_model("tiny", device="cpu")
    x = Axis.parse("scale", "1, 2, 4")
    settings = SampleSettings(OLD, steps=4, seed=3)
    k = 1
    old, new = Timeline(model), Timeline(model)
    a = run_grid(model, settings, x, callback=old)
    b = run_grid(model, replace(settings, prompt=branch_prompt(OLD, NEW, k + 1)), x, callback=new)
    assert len(old.frames) == len(new.frames)
    for i in range(k + 1):
        assert torch.equal(old.frames[i].xt, new.frames[i].xt), i
    assert not torch.equal(old.frames[k + 1].xt, new.frames[k + 1].xt)
    assert not np.array_equal(np.asarray(a.images[1]), np.asarray(b.images[1]))


@sync
async def test_b_branches_the_focused_cell_from_the_scrubbed_step(tmp_path):
    app = make_app(tmp_path, prompt=OLD, steps=4)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("SweepPane")
        await wait_for(pilot, lambda: app.model is not None, what="model")
        await pilot.press("f3")
        pane.query_one("#scales", Input).value = "1, 2, 4"
        pane.cells[0].focus()
        await pilot.press("b")  # nothing to branch from yet
        assert "No timeline to branch from" in status(pane)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: pane.result is not None and pane.insight is not None, what="sweep")
        assert len(pane.cells) == 3
        cell = pane.cells[1]
        cell.focus()
        await pilot.pause()
        await pilot.press("b")
        assert status(pane).startswith("Scrub to a step first: pageup")
        await pilot.press("pageup", "pageup", "pageup")  # the images, then from the last step back to step 3
        assert pane.step == 2
        await pilot.press("b")
        assert "still holds the sweep's prompt" in status(pane)
        app.query_one("#prompt", Input).value = NEW
        await wait_for(pilot, lambda: app.prompts[0] == NEW, what="the new prompt")
        cell.focus()
        await pilot.pause()
        await pilot.press("b")
        await wait_for(pilot, lambda: pane.branched is not None, what="the branch")
        assert cell.caption == f"branch @ step 3: {NEW!r}"
        assert status(pane).startswith(f"branch of cell 2: steps 1-3 {OLD!r}, then {NEW!r}")
        shown = pane.branched
        assert shown.branch.prompt == f"[{OLD}:{NEW}:3]"
        # the branch's latents after the kept steps are the sweep's at the shown step (as the timeline maps them)
        assert np.array_equal(shown.kept_xt, pane.insight.xt[2][1])
        assert not np.array_equal(np.asarray(cell.image), np.asarray(pane.result.images[1]))
        assert cell.generated is shown.image
        # the other cells keep the sweep's images, and the sweep's timeline is still there to scrub
        assert pane.cells[0].caption == pane.result.captions[0]
        assert pane.insight is not None and pane.result.settings.prompt == OLD
        await pilot.press("pageup")
        assert pane.step == 1


class TestBranchSnapshot:
    def test_a_branched_cell_beside_the_sweep(self, snap_compare, tmp_path):
        """The focused cell shows its branch (caption 'branch @ step 3: …'), the status says what ran."""
        from tests.test_tui_snapshots import _app, _model_ready

        async def run_before(pilot) -> None:
            app = pilot.app
            await _model_ready(pilot)
            await pilot.press("f3")
            pane = app.query_one("SweepPane")
            pane.query_one("#scales", Input).value = "1, 2, 4"
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: pane.result is not None and pane.insight is not None, what="sweep")
            pane.cells[1].focus()
            await pilot.pause()
            await pilot.press("pageup", "pageup", "pageup")
            app.query_one("#prompt", Input).value = NEW
            await wait_for(pilot, lambda: app.prompts[0] == NEW, what="the new prompt")
            pane.cells[1].focus()
            await pilot.pause()
            await pilot.press("b")
            await wait_for(pilot, lambda: pane.branched is not None, what="the branch")
            app.set_focus(None)
            app.clear_notifications()

        assert snap_compare(_app(tmp_path, prompt=OLD, steps=4), terminal_size=SIZE, run_before=run_before)
