"""Pilot tests: the sweep pane's pixel cursor (tui/panes/sweep_cursor.py) asks a pixel which words drew it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sd_explorer.core.pixel_attention import PixelRanking, TokenAtPixel
from sd_explorer.tui.panes.sweep_cursor import draw_cursor, ranking_line
from tests.test_tui_insight import PROMPT, _sweep, status
from tests.test_tui_snapshots import _app, _model_ready
from tests.test_tui_support import SIZE, make_app, sync, wait_for

WORDS = {"a", "photo", "of", "sneaker"}


def _shown(pane) -> list[str]:
    """The names in the ranking line (the status line's first line): ``at (x, y): a 1.6% · photo 1.6% · …``."""
    first = status(pane).splitlines()[0]
    assert first.startswith("at (")
    return [entry.rsplit(" ", 1)[0] for entry in first.split(": ", 1)[1].split(" · ")]


@sync
async def test_the_cursor_ranks_the_words_at_its_pixel_and_moves_with_the_arrows(tmp_path):
    app = make_app(tmp_path, prompt=PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _sweep(pilot, app, attention=True)
        plain = np.asarray(pane.cells[1].image).copy()
        pane.cells[1].focus()
        await pilot.pause()
        await pilot.press("c")
        assert pane.cursor == (4, 4) and pane.cursor_index == 1  # the middle of the 8x8 latent grid
        ranking = pane.ranking
        assert (ranking.x, ranking.y, ranking.cell) == (36, 36, (4, 4))
        names = _shown(pane)
        assert names[-3:] == ["<start>", "<end>", "<pad>"] and set(names[:-3]) <= WORDS and names[:-3]
        assert {t.text for t in ranking.tokens if not t.special} == WORDS
        assert status(pane).startswith("at (36, 36): ")
        shown = np.asarray(pane.cells[1].image)
        assert not np.array_equal(shown, plain) and np.array_equal(shown[:32], plain[:32])  # only the cell tinted
        assert shown[36, 36, 2] > shown[36, 36, 0]  # cyan
        assert np.array_equal(np.asarray(pane.cells[0].image), np.asarray(pane.result.images[0]))  # not the others

        await pilot.press("right", "right", "up")  # the arrows move the cursor, they do not scrub
        assert pane.cursor == (6, 3) and pane.step is None
        moved = pane.ranking
        assert (moved.x, moved.y) == (52, 28) and status(pane).startswith("at (52, 28): ")
        assert [t.heat for t in moved.tokens] != [t.heat for t in ranking.tokens]  # another cell, other heat
        assert set(_shown(pane)[:-3]) <= WORDS
        await pilot.press("shift+left", "down", "down", "down", "down", "down")  # clamped at the edges
        assert pane.cursor == (2, 7)
        await pilot.press("pageup")  # pageup still scrubs: the cursor stays on the frame
        assert pane.step == len(pane.insight.steps) - 1 and pane.cursor == (2, 7)
        assert status(pane).startswith("at (20, 60): ")

        await pilot.press("escape")  # leaves the mode, cancels nothing
        assert pane.cursor is None and pane.ranking is None and not status(pane).startswith("at (")
        await pilot.press("pagedown")
        assert np.array_equal(np.asarray(pane.cells[1].image), plain)
        await pilot.press("left")  # left scrubs again
        assert pane.step == len(pane.insight.steps) - 1
        await pilot.press("c", "c")  # c again leaves too
        assert pane.cursor is None


@sync
async def test_the_cursor_follows_the_focus_to_another_cell(tmp_path):
    app = make_app(tmp_path, prompt=PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _sweep(pilot, app, attention=True)
        pane.cells[0].focus()
        await pilot.press("c", "left")
        first = pane.ranking
        pane.cells[2].focus()
        await wait_for(pilot, lambda: pane.cursor_index == 2, what="the cursor on cell 3")
        assert pane.cursor == (3, 4) and pane.ranking is not first and (pane.ranking.x, pane.ranking.y) == (28, 36)
        assert np.array_equal(np.asarray(pane.cells[0].image), np.asarray(pane.result.images[0]))
        await pilot.press("ctrl+r")  # a new sweep: no cursor on its cells
        assert pane.cursor is None


@sync
async def test_without_maps_the_key_says_how_to_turn_them_on(tmp_path):
    app = make_app(tmp_path, prompt=PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _sweep(pilot, app, attention=False)
        pane.cells[0].focus()
        await pilot.press("c")
        assert pane.cursor is None and "ctrl+o turns attention maps on" in status(pane)
        await pilot.press("left")  # the arrows still scrub
        assert pane.step is not None


@sync
async def test_with_maps_the_key_needs_a_focused_cell(tmp_path):
    app = make_app(tmp_path, prompt=PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _sweep(pilot, app, attention=True)
        app.set_focus(None)
        app.run_pane_action("sweep", "pixel_cursor")  # from the command palette: no cell has focus
        await pilot.pause()
        assert pane.cursor is None and status(pane).startswith("Focus a cell first (tab)")


def test_draw_cursor_tints_one_latent_cell_of_any_image():
    image = Image.new("RGB", (128, 64), (10, 10, 10))
    drawn = np.asarray(draw_cursor(image, (15, 7), (16, 8)))
    assert drawn.shape == (64, 128, 3) and (drawn[56:, 120:, 2] > 150).all()
    assert (drawn[:56] == 10).all() and (drawn[:, :120] == 10).all()
    frame = np.asarray(draw_cursor(Image.new("RGB", (16, 8)), (3, 2), (16, 8)))  # a timeline frame: 1 px a cell
    assert frame[2, 3, 2] > 150 and frame.sum() == frame[2, 3].sum()


def test_ranking_line_keeps_the_special_tokens_where_it_is_narrow():
    entries = (TokenAtPixel("<pad ×70>", 7, 140.0, 0.85, "end", tuple(range(7, 77))),
               TokenAtPixel("sneaker", 5, 3.0, 0.0182, "word", (5,), 3.0 / 5.5),
               TokenAtPixel("photo", 2, 2.5, 0.0152, "word", (2,), 2.5 / 5.5),
               TokenAtPixel("<start>", 0, 2.4, 0.0146, "start", (0,)),
               TokenAtPixel("<end>", 6, 2.3, 0.0140, "end", (6,)))
    ranking = PixelRanking(40, 24, (5, 3), (16, 8), (128, 64), 150.2, entries)
    assert ranking_line(ranking, 200).plain == (
        "at (40, 24): sneaker 55% · photo 45% · <start> 1.5% · <end> 1.4% · <pad> 85%")  # words: of the words
    assert ranking_line(ranking, 66).plain == "at (40, 24): sneaker 55% · <start> 1.5% · <end> 1.4% · <pad> 85%"
    assert ranking_line(ranking, 20).plain.startswith("at (40, 24): <start> 1.5%")


# ---------------------------------------------------------------- snapshot (80x24, tiny, 2 steps)
class TestPixelCursorSnapshot:
    def test_cursor_on_a_cell_with_the_words_at_it(self, snap_compare, tmp_path):
        async def run_before(pilot) -> None:
            await _model_ready(pilot)
            await pilot.press("f3", "ctrl+o", "ctrl+r")
            pane = pilot.app.query_one("SweepPane")
            await wait_for(pilot, lambda: pane.insight is not None, what="sweep")
            pane.cells[1].focus()
            await pilot.pause()
            await pilot.press("c", "right", "right", "up")
            pilot.app.set_focus(None)
            pilot.app.clear_notifications()
            await pilot.pause()

        assert snap_compare(_app(tmp_path, prompt=PROMPT), terminal_size=SIZE, run_before=run_before)
