"""Issue 27, item 9: the layout at 80x24 and 120x40 (a new user's report): tiles of one height, chart
labels clear of the progress bars, the loss chart's room, whole state lines and prompt notes."""

from __future__ import annotations

import pytest
from rich.text import Text

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


STATES = ["no run yet · ctrl+r trains", "sampling: shipped model…", "sampling: training run (step 123456)…",
          "shown: training run (stopped)", "training queued behind training, an encode, a sweep",
          "training: starting…", "loading data from fashion-mnist-8k…", "loading data from the Hub's fashion_mnist…",
          "training on cuda…", "training on cuda · escape stops", "training (resumed)", "stopping…",
          "done: last epoch's mean loss 0.0312 · ctrl+g samples it",
          "stopped · checkpoint written · ctrl+g samples it", "failed · fix and ctrl+r"]


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_training_chart_and_states_have_their_room(tmp_path, fashion_dir, size):
    """The fidelity axis's labels ran into the progress bars; plotext's legend covered the chart's three rows
    at 80x24; every state line is whole, with the step numbers, bars and rate under it inside the column."""
    from sd_explorer.tui.panes.train_views import CURVES
    from sd_explorer.tui.panes.training import PAUSED

    app = make_app(tmp_path, data=str(fashion_dir))
    async with app.run_test(size=size) as pilot:
        pane = app.query_one("TrainingPane")
        pane.sample_steps = 2
        await pilot.press("f5")
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-show"), what="shipped")
        pane.steps, pane.losses = list(range(0, 1200, 10)), [1 / (1 + s) for s in range(0, 1200, 10)]
        pane.fidelity = [(s, s / 1200) for s in range(100, 1200, 100)]
        pane._draw_loss()
        await pilot.pause()
        plot, stats, legend = (app.query_one(s) for s in ("#loss", "#stats", "#curves"))
        assert plot.region.right < stats.region.x  # a blank column between the right axis and the bars
        assert plot.region.height >= 7  # frame, x ticks and at least 4 rows of plot (3, covered, before)
        assert legend.region.bottom <= plot.region.y and all(name in str(legend.render()) for name, _ in CURVES)
        assert legend.content_region.width >= len(str(legend.render()))
        assert not any(plot.plt._active.monitor.label)  # no legend drawn inside the plot
        for text in [*STATES, PAUSED]:
            pane._state(text)
            pane.query_one("#step-label").update("step 123456/234567  recent loss 0.0312")
            pane.query_one("#rate").update("1,234 img/s · ETA 1:23:45 · cuda")
            await pilot.pause()
            state = pane.query_one("#state")
            lines = Text(str(state.render())).wrap(app.console, state.content_region.width)
            assert len(lines) <= state.content_region.height, (text, state.region)
            assert " ".join(line.plain.strip() for line in lines) == text
            assert pane.query_one("#rate").region.bottom <= stats.region.bottom, (text, size)


@sync
async def test_the_prompt_notes_wrap_whole_at_80_columns(tmp_path):
    """Issue 27, item 9: "'(' at 17 is never closed: weighs the rest of…" was cut at 80 columns."""
    from textual.widgets import Input, Label

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.query_one("TokensPane").tokenizer is not None, what="tokenizer")
        app.query_one("#prompt", Input).value = "a photo of a (red sneaker on a table"
        label = app.query_one("#count", Label)
        await wait_for(pilot, lambda: "never closed" in str(label.render()), what="the note")
        await pilot.pause()
        text = str(label.render())
        region = label.content_region
        assert region.height >= 2 and len(text) <= region.width * region.height, (region, text)
        assert "weighs the rest" in text  # the note, whole: the label has the rows it needs (it had one)
