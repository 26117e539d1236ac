"""Which words drew a pixel: the prompt's tokens ranked by their cross-attention heat at one image pixel.

A recording (``core.attention.recording``) gives per row ``[77, h, w]``: each token's attention probability
at each latent cell, summed over heads, layers and steps. Every cross-attention query is a softmax over
the 77 positions, so at one cell the 77 sums add up to the same total (heads x layers x steps); a token's
``share`` is its part of that total. ``rank_at`` maps an image pixel ``(x, y)`` to its latent cell (the image
is ``width x height`` pixels over a ``w x h`` grid: column ``x * w // width``, row ``y * h // height``) and
ranks the tokens there, highest first:

- every prompt token (a BPE piece) as ``kind="word"``, with ``of_words``: its part of the words' heat there
  (the start and end tokens take most of every cell's attention, so a word's ``share`` is small everywhere;
  among the words, the one that drew the pixel stands out);
- the start token ``<start>`` (``kind="start"``), the end token ``<end>`` and the padding after it, summed
  as one ``<pad ×N>`` entry (both ``kind="end"``: SD 1.x pads with more end tokens);
- ``PixelRanking.words``: the words of several pieces, their pieces' heat summed (``sneak`` + ``erz``).

No torch: the maps may be a CPU tensor or a numpy array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import UserError
from .tokens import Token

KINDS = ("word", "start", "end")


@dataclass(frozen=True)
class TokenAtPixel:
    """One entry of a pixel's ranking."""

    text: str  #: the piece as text (``sneaker``), a whole word, ``<start>``, ``<end>`` or ``<pad ×70>``
    position: int  #: its (first) position in the 77-token window
    heat: float  #: attention summed over heads, layers and steps at the pixel's latent cell
    share: float  #: ``heat`` over the total of all 77 positions at that cell (0..1)
    kind: str  #: "word", "start" or "end" (the end token and the padding)
    positions: tuple[int, ...] = ()  #: every position summed (a word's pieces, the padding); else ``(position,)``
    of_words: float = 0.0  #: a word's part of the prompt words' heat at that cell (0..1); 0 for start/end

    @property
    def special(self) -> bool:
        return self.kind != "word"


@dataclass(frozen=True)
class PixelRanking:
    """The tokens at pixel ``(x, y)`` of one image, highest heat first."""

    x: int
    y: int
    cell: tuple[int, int]  #: (column, row) in the latent grid
    grid: tuple[int, int]  #: the latent grid (width, height)
    image_size: tuple[int, int]  #: (width, height) in pixels
    total: float  #: the heat of all positions at the cell
    tokens: tuple[TokenAtPixel, ...]  #: every piece, <start>, <end> and the padding, highest first
    words: tuple[TokenAtPixel, ...] = ()  #: words of several pieces, summed, highest first

    def lines(self) -> list[str]:
        """The ranking as text: the prompt's pieces, one a line, highest first, with their part of the words'
        heat (``  1  sneaker         2.611  (41% of the words)``); the words of several pieces; then the
        start and end tokens with their part of all the cell's attention (``     <pad ×70>  149.170  (89% of
        all)``): they hold most of it in every model, carrying the whole prompt, so they are listed apart."""
        (col, row), (w, h) = self.cell, self.grid
        out = [f"at ({self.x}, {self.y}) of the {self.image_size[0]}x{self.image_size[1]} image "
               f"(latent cell {col},{row} of {w}x{h}):"]
        width = max([len(t.text) for t in self.tokens] + [10])
        pieces = [t for t in self.tokens if not t.special]
        out += [f"{rank:>3}  {t.text:<{width}}  {t.heat:>9.3f}  ({percent(t.of_words)}{' of the words' * (rank == 1)})"
                for rank, t in enumerate(pieces, 1)]
        out += [f"     word {t.text!r} (pieces at {','.join(map(str, t.positions))})  {t.heat:.3f}  "
                f"({percent(t.of_words)})" for t in self.words]
        specials = [t for t in self.tokens if t.special]
        out += [f"     {t.text:<{width}}  {t.heat:>9.3f}  ({percent(t.share)}{' of all' * (i == 0)})"
                for i, t in enumerate(specials)]
        return out


def percent(share: float) -> str:
    """``0.412`` -> ``41%``; under 10 %, one decimal (``1.6%``): the tiny model's words sit near 1.5 %."""
    return f"{share * 100:.0f}%" if share >= 0.1 else f"{share * 100:.1f}%"


def check_pixel(x: int, y: int, image_size: tuple[int, int]) -> None:
    """``UserError`` unless ``(x, y)`` is a pixel of a ``width x height`` image."""
    width, height = image_size
    if not (0 <= x < width and 0 <= y < height):
        raise UserError(f"pixel ({x}, {y}) is outside the {width}x{height} image: "
                        f"give X from 0 to {width - 1} and Y from 0 to {height - 1}.")


def latent_cell(x: int, y: int, image_size: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    """The latent cell (column, row) of a ``grid`` (width, height) that holds image pixel ``(x, y)``."""
    check_pixel(x, y, image_size)
    (width, height), (w, h) = image_size, grid
    return min(w - 1, x * w // width), min(h - 1, y * h // height)


def cell_centre(cell: tuple[int, int], image_size: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    """The image pixel at the middle of latent ``cell`` (column, row): what the TUI's cursor names."""
    (col, row), (width, height), (w, h) = cell, image_size, grid
    return min(width - 1, (2 * col + 1) * width // (2 * w)), min(height - 1, (2 * row + 1) * height // (2 * h))


def _entry(text: str, positions: list[int], heats: np.ndarray, total: float, kind: str,
           words: float = 0.0) -> TokenAtPixel:
    heat = float(heats[positions].sum())
    return TokenAtPixel(text, positions[0], heat, heat / total if total > 0 else 0.0, kind, tuple(positions),
                        heat / words if kind == "word" and words > 0 else 0.0)


def _text(tok: Token) -> str:
    return tok.text or tok.piece.replace("</w>", "")


def _words(pieces: list[Token]) -> list[list[Token]]:
    """Consecutive pieces grouped into words: a word ends with a piece that ends in ``</w>``."""
    words, current = [], []
    for tok in pieces:
        current.append(tok)
        if tok.piece.endswith("</w>"):
            words.append(current)
            current = []
    if current:
        words.append(current)
    return words


def rank_at(maps, tokens: Sequence[Token], x: int, y: int, image_size: tuple[int, int]) -> PixelRanking:
    """The prompt's tokens ranked by heat at image pixel ``(x, y)``.

    ``maps``: one row of a recording, ``[positions, h, w]`` (``HeatRecording.maps()[i]``); ``tokens``: the
    prompt's ``core.tokens.breakdown(...).tokens`` (start, pieces, end; dropped ones are skipped);
    ``image_size``: the image's (width, height). ``UserError`` if the pixel is outside the image."""
    heat = np.asarray(maps, dtype=np.float64)
    if heat.ndim != 3:
        raise ValueError(f"maps must be [positions, h, w], got shape {heat.shape}")
    window, h, w = heat.shape
    col, row = latent_cell(x, y, image_size, (w, h))
    at = heat[:, row, col]
    total = float(at.sum())
    kept = [t for t in tokens if not t.dropped and t.position < window]
    pieces = [t for t in kept if not t.special]
    specials = [t for t in kept if t.special]
    words_total = float(at[[t.position for t in pieces]].sum()) if pieces else 0.0
    entries = [_entry(_text(t), [t.position], at, total, "word", words_total) for t in pieces]
    start = next((t for t in specials if t.position == 0), None)
    if start is not None:
        entries.append(_entry("<start>", [0], at, total, "start"))
    end = next((t for t in specials if t.position > 0), None)
    if end is not None:
        entries.append(_entry("<end>", [end.position], at, total, "end"))
        pad = list(range(end.position + 1, window))
        if pad:
            entries.append(_entry(f"<pad ×{len(pad)}>", pad, at, total, "end"))
    words = [_entry("".join(_text(p) for p in group), [p.position for p in group], at, total, "word", words_total)
             for group in _words(pieces) if len(group) > 1]
    rank = lambda e: (-e.heat, e.position)  # noqa: E731 - equal heat: in prompt order
    return PixelRanking(x, y, (col, row), (w, h), tuple(image_size), total,
                        tuple(sorted(entries, key=rank)), tuple(sorted(words, key=rank)))


def rank_pixels(maps, tokens: Sequence[Token], points: Sequence[tuple[int, int]],
                image_size: tuple[int, int]) -> list[PixelRanking]:
    """``rank_at`` for each of ``points`` (all checked first, so one bad point fails before any ranking)."""
    for x, y in points:
        check_pixel(x, y, image_size)
    return [rank_at(maps, tokens, x, y, image_size) for x, y in points]
