"""Exercise 9 on the Fashion-MNIST model, from the training pane: grey-level loss guidance on the samples."""

from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import Input

from tests.test_tui_support import SIZE, make_app, sync, wait_for
from sd_explorer.tui.panes.train_views import parse_grey
from sd_explorer.core.errors import UserError


def test_parse_grey():
    assert parse_grey("") is None and parse_grey("1, 30") == (1.0, 30.0)
    for bad in ("white", "2,30", "1,-1", "1"):
        with pytest.raises(UserError, match="grey guidance"):
            parse_grey(bad)


@sync
async def test_grey_guidance_brightens_the_per_class_samples(tmp_path, fashion_dir):
    from sd_explorer.core.fashion.model import SHIPPED_WEIGHTS

    if not SHIPPED_WEIGHTS.is_file():
        pytest.skip("no shipped Fashion-MNIST model")
    app = make_app(tmp_path, data=str(fashion_dir))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("TrainingPane")
        pane.sample_steps = 5
        await pilot.press("f5")
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-show"), what="shipped")
        samples = app.query_one("#samples")
        plain = np.asarray(samples.image.convert("L"), dtype=np.float32).mean()
        app.query_one("#grey", Input).value = "nonsense"
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert not app.model_worker.busy("fashion-show")  # refused with a notification, nothing ran
        app.query_one("#grey", Input).value = "1,30"
        await pilot.press("ctrl+g")
        await pilot.pause()
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-show"), what="guided")
        bright = np.asarray(samples.image.convert("L"), dtype=np.float32).mean()
        assert "grey guidance 1 x30" in samples.caption
        assert bright > plain + 5
