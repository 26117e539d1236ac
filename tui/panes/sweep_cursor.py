"""The sweep pane's pixel cursor: ask a pixel of a cell which words drew it (issue 25).

``c`` on a focused cell of a sweep that recorded heat maps puts a cursor on the cell (its middle latent
cell); the arrows then move it one latent cell a press (shift+arrow: four) instead of scrubbing the
steps, and ``escape`` or ``c`` again takes it away. The cursor is painted into the cell's image before
it is drawn (``draw_cursor``: the latent cell tinted cyan, a colour the heat ramp never uses), so the
half-block cells and the Sixel/Kitty renderers show it alike. The status line's first line ranks the
prompt's tokens at the cursor's pixel (``core.pixel_attention.rank_at``): the top words, then the
start, end and padding tokens: ``at (36, 28): sneaker 61% · a 20% · photo 9% · <start> 0.1% · <end> 2.0% · <pad> 96%``
(a word: its part of the words' heat; a start/end token: its part of all the attention there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from rich.text import Text
from textual.binding import Binding

from ...core.pixel_attention import PixelRanking, cell_centre, percent, rank_at
from ...core.tokens import breakdown
from .grid import GridCell

if TYPE_CHECKING:
    from ..app_context import AppContext

CURSOR_RGB = np.array([0, 230, 255], np.float32)  #: cyan: not on the heat overlay's black-red-yellow-white ramp
CURSOR_ALPHA = 0.7
FAST = 4  #: latent cells a shift+arrow moves
NO_MAPS = "No heat maps to ask: ctrl+o turns attention maps on, ctrl+r sweeps, then c on a cell."


def draw_cursor(image: Image.Image, cell: tuple[int, int], grid: tuple[int, int]) -> Image.Image:
    """``image`` with latent ``cell`` (column, row) of a ``grid`` (width, height) tinted cyan; the
    image may be the decoded one or a one-pixel-per-latent timeline frame."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    height, width = rgb.shape[:2]
    (col, row), (w, h) = cell, grid
    x0, x1 = col * width // w, max(col * width // w + 1, (col + 1) * width // w)
    y0, y1 = row * height // h, max(row * height // h + 1, (row + 1) * height // h)
    rgb[y0:y1, x0:x1] = rgb[y0:y1, x0:x1] * (1 - CURSOR_ALPHA) + CURSOR_RGB * CURSOR_ALPHA
    return Image.fromarray(rgb.round().astype(np.uint8))


def ranking_line(ranking: PixelRanking, width: int, words: int = 3) -> Text:
    """``at (x, y): w1 s1 · w2 s2 · … · <start> s · <end> s · <pad> s`` in at most ``width`` columns (fewer
    words where it is narrow: the start/end tokens always show). A word's percentage is its part of the
    words' heat at the pixel; a start/end token's, its part of all the attention there."""
    pieces = [t for t in ranking.tokens if not t.special]
    specials = sorted((t for t in ranking.tokens if t.special), key=lambda t: t.position)
    for count in range(min(words, len(pieces)), -1, -1):
        line = Text(f"at ({ranking.x}, {ranking.y}): ", no_wrap=True, overflow="ellipsis")
        for i, entry in enumerate(pieces[:count] + specials):
            line.append(" · " if i else "")
            line.append("<pad>" if entry.text.startswith("<pad") else entry.text,
                        style="dim" if entry.special else "bold")
            line.append(f" {percent(entry.share if entry.special else entry.of_words)}")
        if line.cell_len <= width:
            break
    return line


class CursorCell(GridCell):
    """A grid cell that moves the pane's pixel cursor with the arrows while the cursor is on it
    (otherwise its arrows fall through to the pane: left/right scrub the steps)."""

    BINDINGS = [
        Binding("left", "move_cursor(-1, 0)", show=False), Binding("right", "move_cursor(1, 0)", show=False),
        Binding("up", "move_cursor(0, -1)", show=False), Binding("down", "move_cursor(0, 1)", show=False),
        Binding("shift+left", f"move_cursor(-{FAST}, 0)", show=False),
        Binding("shift+right", f"move_cursor({FAST}, 0)", show=False),
        Binding("shift+up", f"move_cursor(0, -{FAST})", show=False),
        Binding("shift+down", f"move_cursor(0, {FAST})", show=False),
        Binding("escape", "leave_cursor", show=False),
    ]

    def _pane(self) -> CursorMixin | None:
        return next((a for a in self.ancestors if isinstance(a, CursorMixin)), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("move_cursor", "leave_cursor"):
            pane = self._pane()
            return pane is not None and pane.cursor is not None and pane.cursor_index == self.index
        return True

    def action_move_cursor(self, dx: int, dy: int) -> None:
        if (pane := self._pane()) is not None:
            pane.move_cursor(dx, dy)

    def action_leave_cursor(self) -> None:
        if (pane := self._pane()) is not None:
            pane.leave_cursor()

    def on_focus(self) -> None:  # GridCell.on_focus (the selection) runs too: Textual calls each class's
        pane = self._pane()
        if pane is not None and pane.cursor is not None and pane.cursor_index != self.index:
            pane.cursor_index = self.index  # the cursor follows the focus to another cell
            pane.redraw()


class CursorMixin:
    """The pixel cursor of ``SweepPane`` (mixed in before ``InsightMixin``, whose ``redraw`` calls
    ``insight_drawn`` once every cell is drawn)."""

    ctx: AppContext
    result: Any
    cells: list

    CURSOR_BINDINGS = [
        Binding("c", "pixel_cursor", "On a cell: which words drew this pixel (arrows move, escape leaves)",
                show=False, tooltip="A cursor on the focused cell and the prompt's tokens ranked by their heat "
                                    "there (needs attention maps: ctrl+o)"),
    ]

    cursor: tuple[int, int] | None = None  #: (column, row) in the latent grid, or None: no cursor
    cursor_index = 0  #: the cell the cursor is on
    ranking: PixelRanking | None = None  #: the tokens at the cursor, once drawn

    def action_pixel_cursor(self) -> None:
        """Put the cursor on the focused cell (the middle of its image), or take it away."""
        if self.cursor is not None:
            self.leave_cursor()
            return
        insight = getattr(self, "insight", None)
        if insight is None or insight.maps is None:
            self.status(NO_MAPS if not self.attention or insight is not None else
                        "The heat maps come with the sweep: ctrl+r runs it (a sweep of scales, seeds or "
                        "negatives, no Y axis), then c on a cell.")
            return
        focused = self.app.focused
        if not isinstance(focused, CursorCell) or focused not in self.cells:
            self.status("Focus a cell first (tab), then c puts the cursor on it.")
            return
        h, w = insight.maps.shape[-2:]
        self.cursor, self.cursor_index = (w // 2, h // 2), focused.index
        self.redraw()

    def move_cursor(self, dx: int, dy: int) -> None:
        h, w = self.insight.maps.shape[-2:]
        col, row = self.cursor
        self.cursor = (min(w - 1, max(0, col + dx)), min(h - 1, max(0, row + dy)))
        self.redraw()

    def leave_cursor(self) -> None:
        self.cursor, self.ranking = None, None
        self.redraw()

    def clear_insight(self) -> None:
        """A new sweep: the cursor goes with the old maps."""
        self.cursor, self.ranking = None, None
        super().clear_insight()

    def insight_drawn(self, line: Text) -> None:
        """After ``redraw``: paint the cursor on its cell and rank the tokens at its pixel above ``line``."""
        if self.cursor is None or self.result is None or self.insight.maps is None:
            self.ranking = None
            super().insight_drawn(line)
            return
        maps, i = self.insight.maps, self.cursor_index
        grid = (maps.shape[-1], maps.shape[-2])
        size = self.result.images[i].size
        tokenizer = self.ctx.tokenizers[0][1] if self.ctx.tokenizers else None
        if tokenizer is None:
            super().insight_drawn(line)
            return
        settings = self.result.settings
        tokens = breakdown(tokenizer, settings.prompt, settings.long_prompt).tokens
        x, y = cell_centre(self.cursor, size, grid)
        self.ranking = rank_at(maps[i], tokens, x, y, size)
        cell = self.cells[i]
        cell.image = draw_cursor(cell.image, self.cursor, grid)
        width = max(20, self.size.width - 2)
        self.status(Text("\n").join([ranking_line(self.ranking, width), line]))
