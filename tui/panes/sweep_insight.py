"""What the sweep pane shows of the inside of a run: per-token heat maps and the denoising timeline.

``SweepInsight`` is computed on the worker after a sweep (``collect``): every step's x0 estimate and
x_t as one-pixel-per-latent RGB (``core.timeline``), and, when attention maps are on, the per-token
cross-attention sums (``core.attention``). ``InsightMixin`` gives the grid pane the keys: attention
maps on/off, cycle the highlighted token, scrub the steps (pageup/pagedown, or left/right on a focused cell), x0 or x_t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.text import Text
from textual.binding import Binding

from ...core.tokens import breakdown

if TYPE_CHECKING:
    from ..app_context import AppContext



@dataclass
class SweepInsight:
    """A finished sweep's timeline (and heat maps, if recorded), ready to draw."""

    steps: list[str]  #: per step: "step k/N · t=… · σ=…"
    x0: np.ndarray = field(repr=False)  #: uint8 [steps, rows, h, w, 3]
    xt: np.ndarray = field(repr=False)
    maps: object = field(default=None, repr=False)  #: torch [rows, 77, h, w] or None
    timesteps: list[float] = field(default_factory=list)


def collect(model, timeline, recording=None, edits: list | None = None) -> SweepInsight:
    """On the worker, after the run: the previews of every step and the heat maps; ``edits`` (the result's
    prompt schedules) mark the steps where a prompt edit switches the text."""
    total = len(timeline.frames)
    return SweepInsight([f.describe(total, edits) for f in timeline.frames], timeline.previews(model, "x0"),
                        timeline.previews(model, "xt"), recording.maps() if recording is not None else None,
                        [f.timestep for f in timeline.frames])


def legend_text(word: str, lo: float, hi: float) -> Text:
    """``'sneaker' 7.91 ████████ 8.73``: the overlay's colours and the summed attention they stand for."""
    from ...core.attention import legend

    low, colours, high = legend(lo, hi)
    text = Text(f"heat {word!r} {low} ")
    for r, g, b in colours:
        text.append("█", style=f"rgb({r},{g},{b})")
    text.append(f" {high}")
    return text


class InsightMixin:
    """Keys and drawing for heat maps and the timeline (mixed into ``SweepPane``, which gives it ``ctx``,
    ``result``, ``cells``, ``status`` and ``post_timestep``: the timestep shown, told to the app)."""

    ctx: AppContext
    result: Any
    cells: list

    INSIGHT_BINDINGS = [
        Binding("ctrl+o", "toggle_attention", "Attention on/off", show=False,
                tooltip="Record cross-attention heat maps in the next sweep"),  # the footer keeps to 80 columns
        Binding("ctrl+t", "next_token", "Heat of next token", show=False,
                tooltip="Overlay the next prompt token's heat map"),
        Binding("left,pageup", "scrub(-1)", "One step back in the timeline (left: on a cell)", show=False),
        Binding("right,pagedown", "scrub(1)", "One step on (past the last: the images)", show=False),
        Binding("x", "toggle_latents", "On a scrubbed cell: x0 estimate or x_t", show=False,
                tooltip="The scrubbed step's x0 estimate or its noisy latent x_t"),
    ]

    attention = False  #: record heat maps in the next sweep (costs time: off by default)
    insight: SweepInsight | None = None
    token: tuple[int, str] | None = None  #: (position, word) whose heat is overlaid, or None
    step: int | None = None  #: the scrubbed step (0-based), or None: the final images
    show_xt = False

    # -- keys --------------------------------------------------------------------------------------
    def action_toggle_attention(self) -> None:
        self.attention = not self.attention
        self.notify("Attention maps on: the next sweep records them (ctrl+t picks a token)." if self.attention
                    else "Attention maps off.", title="Attention", timeout=4)

    def prompt_words(self) -> list[tuple[int, str]]:
        """(position, word) of the prompt's tokens, from the app's tokenizer."""
        ctx = self.ctx
        if not ctx.tokenizers:
            return []

        tokenizer = ctx.tokenizers[0][1]
        return [(t.position, t.piece.replace("</w>", "")) for t in breakdown(tokenizer, ctx.prompts[0]).kept]

    def action_next_token(self) -> None:
        """The next prompt token (past the last: none). Its heat shows once a sweep recorded maps."""
        words = self.prompt_words()
        if not words:
            return
        positions = [p for p, _ in words]
        now = positions.index(self.token[0]) if self.token and self.token[0] in positions else -1
        self.token = None if now == len(words) - 1 else words[now + 1]
        if self.insight is not None and self.insight.maps is not None:
            self.redraw()
        elif not self.attention:
            self.notify("No heat maps: ctrl+o turns them on, ctrl+r sweeps.", title="Attention",
                        severity="warning", timeout=3)
        elif self.token is not None:
            self.notify(f"{self.token[1]!r}: its heat map shows when the sweep with maps finishes.",
                        title="Attention", timeout=3)

    def select_token(self, position: int, piece: str) -> None:
        """A token was picked in the token table: overlay its heat (the start/end tokens too)."""
        self.token = (position, piece.replace("</w>", ""))
        if self.insight is not None and self.insight.maps is not None:
            self.redraw()

    def action_scrub(self, delta: int) -> None:
        if self.insight is None:
            return
        last = len(self.insight.steps) - 1
        if self.step is None:
            self.step = last if delta < 0 else None
        else:
            self.step += delta
            self.step = None if self.step > last else max(0, self.step)
        self.redraw()
        self.post_timestep()

    def action_toggle_latents(self) -> None:
        self.show_xt = not self.show_xt
        if self.step is not None:
            self.redraw()

    # -- drawing -----------------------------------------------------------------------------------
    def clear_insight(self) -> None:
        self.insight, self.step = None, None
        self.post_timestep()

    def redraw(self) -> None:
        """Every cell: the final image or the scrubbed step's x0 / x_t, with the token's heat over it."""
        result, insight = self.result, self.insight
        if result is None or insight is None:
            return
        from ...core.attention import overlay

        heat = None
        if self.token is not None and insight.maps is not None:
            from ...core.attention import normalise

            heat, lo, hi = normalise(insight.maps[:, [self.token[0]]].sum(1).numpy())
        frames = None if self.step is None else (insight.xt if self.show_xt else insight.x0)[self.step]
        from ..widgets.image_view import to_pil

        for i, (cell, caption) in enumerate(zip(self.cells, result.captions)):
            image = result.images[i] if frames is None else to_pil(frames[i])
            if heat is not None:
                image = overlay(image, heat[i])
            cell.image, cell.caption = image, caption
        parts: list = []
        if heat is not None:
            parts.append(legend_text(self.token[1], lo, hi))
        if self.step is not None:
            parts.append(Text(f"{insight.steps[self.step]} · {'x_t' if self.show_xt else 'x0'} (x toggles)"))
        else:
            parts.append(Text("final images · pageup/pagedown scrub the steps"))
        self.insight_drawn(Text(" · ").join(parts))

    def insight_drawn(self, line: Text) -> None:
        """Every cell is drawn: show the status ``line`` (the pixel cursor adds to it: ``sweep_cursor``)."""
        self.status(line)

