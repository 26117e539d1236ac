"""The app on a GPU (``-m gpu``): an SD-shaped model on CUDA with the fast paths, a sweep from the keyboard,
and what a person sees: the header's short engine status, the whole line in the message log, every cell."""

from __future__ import annotations

import pytest

from tests.test_tui_support import make_app, sync, wait_for

pytestmark = pytest.mark.gpu


@sync
async def test_a_sweep_on_the_gpu_keeps_the_header_short_at_80_columns(sd1_folder, tmp_path):
    app = make_app(tmp_path, model=str(sd1_folder), device="cuda", dtype="fp16", steps=4)
    app.status_seconds = 600.0  # a finished status stays: we read it after the sweep
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.model is not None, timeout=300, what="the model on CUDA")
        assert app.model.device.type == "cuda" and app.model.unet_forward is not None  # fast paths on
        await pilot.press("f3")
        await pilot.press("ctrl+r")
        pane = app.query_one("SweepPane")
        await wait_for(pilot, lambda: pane.result is not None, timeout=300, what="the sweep")
        await pilot.pause()
        whole = [n.message for n in app.notices if n.message.startswith("captured CUDA graph for UNet [")]
        assert whole, [n.message for n in app.notices]  # the whole line, shapes and all, in the message log
        assert "captured CUDA graph for UNet in" in app.sub_title and "[" not in app.sub_title
        header = app.query_one("HeaderTitle").render_line(0).text
        assert "captured CUDA graph for UNet in" in header and " s" in header  # not cut at 80 columns
        assert all(cell.image is not None for cell in pane.cells) and len(pane.cells) == len(pane.result.images)
