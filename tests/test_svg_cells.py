"""The snapshot comparison (tests/svg_cells.py) forgives the last bits of an image's colours, nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.svg_cells import MAX_CHANNEL, cells, difference

SNAPSHOTS = Path(__file__).parent / "__snapshots__" / "test_tui_snapshots"
SWEEP = SNAPSHOTS / "TestSweepPane.test_finished_sweep[size1].svg"


@pytest.fixture(scope="module")
def svg() -> str:
    return SWEEP.read_text()


def _shift_rect_fills(svg: str, by: int, every: int = 1) -> str:
    """Every ``every``-th background colour of a cell, each channel moved by ``by`` levels (clamped)."""
    count = 0

    def move(m: re.Match) -> str:
        nonlocal count
        count += 1
        if count % every:
            return m.group(0)
        rgb = [min(255, max(0, int(m.group(1)[i:i + 2], 16) + by)) for i in (0, 2, 4)]
        return '<rect fill="#' + "".join(f"{c:02x}" for c in rgb) + '"'

    return re.sub(r'<rect fill="#([0-9a-f]{6})"(?= x)', move, svg)


def test_every_cell_of_the_screen_is_read(svg):
    grid = cells(svg)
    assert len(grid) == 120 * 40  # the snapshot's terminal size
    header = "".join(grid[(0, c)].char for c in range(120))
    assert "sd-explorer — tiny (sd1, cpu, fp32)" in header
    assert "f3 Sweep" in "".join(grid[(1, c)].char for c in range(120))


def test_the_same_screenshot_matches(svg):
    assert difference(svg, svg) is None


def test_one_level_on_a_few_cells_matches(svg):
    assert difference(svg, _shift_rect_fills(svg, 1, every=7)) is None


def test_a_changed_character_fails(svg):
    changed = svg.replace(">Sweep", ">Sweel", 1) if ">Sweep" in svg else svg.replace("guidance", "guidancf", 1)
    assert changed != svg
    assert "became" in difference(svg, changed)


def test_a_changed_image_fails(svg):
    assert "levels" in difference(svg, _shift_rect_fills(svg, MAX_CHANNEL + 1, every=50))
    assert "on average" in difference(svg, _shift_rect_fills(svg, 20))


def test_a_missing_background_fails(svg):
    first = re.search(r'<rect fill="#[0-9a-f]{6}" x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" '
                      r'shape-rendering="crispEdges"/>', svg).group(0)
    assert difference(svg, svg.replace(first, "", 1)) is not None
