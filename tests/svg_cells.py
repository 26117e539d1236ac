"""Snapshot comparison that reads a Textual SVG screenshot as a grid of terminal cells.

The panes show images made by float arithmetic (the UNet, the VAE, a resize), and the last bit of that arithmetic
differs between CPUs and library versions: a fresh CI machine drew one half-block ``#6b696a`` where the stored
snapshot has ``#6b6a6a``. Compared as text, such an SVG fails although nothing a person could see changed. So the
screenshot is read back as cells (row, column) -> character, style and colours; then

- every character and every non-colour style (bold, italic, underline) must be equal, and every cell present;
- colours may differ a little: no channel by more than ``MAX_CHANNEL`` and, over all the cells' colour channels,
  by at most ``MEAN_CHANNEL`` on average.

A wrong image (a heat-map overlay instead of the picture, another seed, noise) moves many cells by tens of levels
and fails; a wrong pane, a moved widget or a changed word fails on the characters.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from rich.cells import cell_len

MAX_CHANNEL = 48     # largest difference of one colour channel of one cell, in 0-255 levels
MEAN_CHANNEL = 0.5   # largest mean difference over every channel of every cell

CHAR_WIDTH = 12.2    # Rich's export_svg at font size 20: char_width = 20 * 0.61
LINE_HEIGHT = 24.4   # line_height = 20 * 1.22
_RULE = re.compile(r"\.terminal-(r\d+) \{ ([^}]*) \}")
_RECT = re.compile(r'<rect fill="(#[0-9a-fA-F]{6})" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="[\d.]+" '
                   r'shape-rendering="crispEdges"/>')
_TEXT = re.compile(r'<text class="terminal-(r\d+)" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
                   r'clip-path="url\(#terminal-line-(\d+)\)">(.*?)</text>')
_FILL = re.compile(r"fill:\s*(#[0-9a-fA-F]{6})")


@dataclass
class Cell:
    background: str = ""
    char: str = " "
    foreground: str = ""
    style: str = ""  # the text's CSS without its colour (font-weight, text-decoration, ...)


def cells(svg: str) -> dict[tuple[int, int], Cell]:
    """Every drawn cell of a normalized (``terminal-rN``) Rich SVG, by (row, column)."""
    rules = dict(_RULE.findall(svg))
    grid: dict[tuple[int, int], Cell] = {}
    for fill, x, y, width in _RECT.findall(svg):
        row, col = round((float(y) - 1.5) / LINE_HEIGHT), round(float(x) / CHAR_WIDTH)
        for c in range(col, col + round(float(width) / CHAR_WIDTH)):
            grid.setdefault((row, c), Cell()).background = fill.lower()
    for rule, x, line, text in _TEXT.findall(svg):
        css = rules.get(rule, "")
        fill = _FILL.search(css)
        rest = ";".join(sorted(p.strip() for p in _FILL.sub("", css).split(";") if p.strip()))
        col, row = round(float(x) / CHAR_WIDTH), int(line)
        for ch in html.unescape(text).replace("\xa0", " "):
            cell = grid.setdefault((row, col), Cell())
            cell.char, cell.style = ch, rest
            cell.foreground = fill.group(1).lower() if fill else ""
            col += max(cell_len(ch), 1)
    return grid


def _channels(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)) if colour else (-1, -1, -1)


def difference(expected: str, actual: str) -> str | None:
    """None when the two screenshots show the same screen; else one line saying where they first differ."""
    old, new = cells(expected), cells(actual)
    if old.keys() != new.keys():
        extra = sorted(old.keys() ^ new.keys())[:3]
        return f"cells drawn differ at (row, column) {extra}"
    total, count, worst = 0, 0, (0, (0, 0))
    for key in sorted(old):
        a, b = old[key], new[key]
        if (a.char, a.style) != (b.char, b.style):
            return f"cell {key}: {a.char!r} {a.style!r} became {b.char!r} {b.style!r}"
        for ca, cb in ((a.background, b.background), (a.foreground if a.char != " " else "",
                                                        b.foreground if b.char != " " else "")):
            if (ca == "") != (cb == ""):
                return f"cell {key}: colour {ca or 'none'} became {cb or 'none'}"
            for x, y in zip(_channels(ca), _channels(cb)):
                total, count = total + abs(x - y), count + 1
                worst = max(worst, (abs(x - y), key))
    if worst[0] > MAX_CHANNEL:
        return f"cell {worst[1]}: a colour channel moved by {worst[0]} levels (at most {MAX_CHANNEL})"
    if count and total / count > MEAN_CHANNEL:
        return f"colours moved by {total / count:.2f} levels on average (at most {MEAN_CHANNEL})"
    return None
