"""Issue 27, item 9: the layout at 80x24 and 120x40 (a new user's report): tiles of one height, chart
labels clear of the progress bars, the loss chart's room, whole state lines and prompt notes."""

from __future__ import annotations

import pytest

from tests.test_tui_support import make_app, sync, wait_for, write_gradient
from sd_explorer.tui.widgets.image_view import fit

SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_latent_tiles_are_one_size(tmp_path, size):
    """The round trip's tile was one cell wider at 120 columns (1fr's odd cell), so its image was a row taller."""
    image = write_gradient(tmp_path / "gradient.png")
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await pilot.press("f4", *str(image), "enter")
        pane = app.query_one("LatentsPane")
        await wait_for(pilot, lambda: pane.report is not None, what="round trip")
        tiles = list(pane.query_one("#row").children)
        assert len(tiles) == 6 and len({tile.region.size for tile in tiles}) == 1, [t.region for t in tiles]
        rows = {fit(tile.image.size, tile.area())[1] for tile in tiles}  # the image's height in pixels
        assert len(rows) == 1, rows
        regions = [tile.region for tile in tiles]
        assert all(not a.overlaps(b) for a, b in zip(regions, regions[1:]))
        assert regions[-1].right <= pane.region.right
