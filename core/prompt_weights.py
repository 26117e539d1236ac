"""Prompt weights in AUTOMATIC1111's syntax: which words of a prompt the text conditioning stresses.

``(word)`` multiplies the weight of what it encloses by 1.1, ``((word))`` by 1.21, ``[word]`` divides it
by 1.1, ``(several words:1.3)`` sets a factor of 1.3; ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are literal
characters, and ``BREAK`` (capitals, a word of its own) ends the current 75-token chunk (``core.chunks``).

Unbalanced brackets are not an error, exactly as in A1111: a bracket left open weighs everything up to
the end of the prompt, and a closing bracket with no opener is kept as text. ``parse`` reports each such
reading in ``ParsedPrompt.notes`` so the token pane can say how the prompt was read.

The weights are applied to the text encoder's output (``core.conditioning``): each token's hidden state
is multiplied by its weight, then the whole chunk is rescaled so its mean is what it was unweighted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
import math

from .errors import UserError

ROUND = 1.1  #: ``(x)``
SQUARE = 1 / 1.1  #: ``[x]``
BREAK = "BREAK"

_TOKENS = re.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|   # escapes (a lone backslash is text)
\(|\[|
:\s*([+-]?[.\d]+)\s*\)|      # (text:1.3)
\)|]|
[^\\()\[\]:]+|
:
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


@dataclass(frozen=True)
class Fragment:
    """A run of prompt text with one weight; ``text == BREAK`` with ``is_break`` marks a chunk break."""

    text: str
    weight: float = 1.0
    is_break: bool = False


@dataclass(frozen=True)
class ParsedPrompt:
    text: str
    fragments: list[Fragment]
    notes: list[str] = field(default_factory=list)  #: how unbalanced brackets and odd weights were read

    @property
    def weighted(self) -> bool:
        """Any weight other than 1 (otherwise the encoding equals the plain prompt's exactly)."""
        return any(f.weight != 1.0 for f in self.fragments if not f.is_break)

    @property
    def breaks(self) -> int:
        return sum(f.is_break for f in self.fragments)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse(text: str) -> ParsedPrompt:
    """``"a (red:1.3) [cat]"`` -> fragments ``a `` x1, ``red`` x1.3, `` `` x1, ``cat`` x0.909 (A1111's reading)."""
    res: list[list] = []  # [text, weight, is_break]
    rounds: list[tuple[int, int]] = []  # (fragment index, character offset) of each open "("
    squares: list[tuple[int, int]] = []
    notes: list[str] = []

    def multiply(start: int, factor: float) -> None:
        for item in res[start:]:
            item[1] *= factor

    for m in _TOKENS.finditer(text):
        piece, weight = m.group(0), m.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:] or "\\", 1.0, False])
        elif piece == "(":
            rounds.append((len(res), m.start()))
        elif piece == "[":
            squares.append((len(res), m.start()))
        elif weight is not None and rounds:
            value = _number(weight)
            if value is None:
                notes.append(f"weight {weight!r} at {m.start()} is not a number: read as x1.1")
            multiply(rounds.pop()[0], ROUND if value is None else value)
        elif piece == ")" and rounds:
            multiply(rounds.pop()[0], ROUND)
        elif piece == "]" and squares:
            multiply(squares.pop()[0], SQUARE)
        else:
            if piece in (")", "]") or (weight is not None and not rounds):
                notes.append(f"{piece.strip()!r} at {m.start()} closes nothing: kept as text")
            for i, part in enumerate(_BREAK.split(piece)):
                if i:
                    res.append([BREAK, 1.0, True])
                res.append([part, 1.0, False])
    for start, offset in rounds:
        multiply(start, ROUND)
        notes.append(f"'(' at {offset} is never closed: weighs the rest of the prompt x1.1")
    for start, offset in squares:
        multiply(start, SQUARE)
        notes.append(f"'[' at {offset} is never closed: weighs the rest of the prompt /1.1")
    merged: list[Fragment] = []
    for piece, weight, is_break in res:
        if not is_break and not piece:
            continue
        if merged and not is_break and not merged[-1].is_break and merged[-1].weight == weight:
            merged[-1] = Fragment(merged[-1].text + piece, weight)
        else:
            merged.append(Fragment(piece, weight, is_break))
    return ParsedPrompt(text, merged, notes)



MAX_WEIGHT = 10.0  #: the sane range of a prompt weight is -10 to 10 (A1111's (word:1.3); 25 nested "(" reach 10.8)


def check_weights(text: str, what: str = "the prompt") -> None:
    """Refuse a prompt whose weights leave -``MAX_WEIGHT`` to ``MAX_WEIGHT`` (``(boot:1e308)``, 1000 nested
    parentheses: 1.1^1000 overflows fp32 and the image comes out black), with one line naming the fix."""
    if "(" not in text and ":" not in text and "[" not in text:
        return
    for frag in parse(text).fragments:
        if frag.is_break:
            continue
        if not math.isfinite(frag.weight) or abs(frag.weight) > MAX_WEIGHT:
            piece = " ".join(frag.text.split())[:30]
            raise UserError(f"{what} weighs {piece!r} x{frag.weight:.3g}, outside -{MAX_WEIGHT:g} to {MAX_WEIGHT:g}: "
                            "use e.g. (word:1.3), or fewer nested brackets.")
