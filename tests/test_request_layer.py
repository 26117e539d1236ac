"""The request layer (issue 22): a guidance scale is checked once, where it is typed, and travels as a
``Scale`` into the cell's settings and its ``Row``; the checks keep their one-line messages."""

from types import SimpleNamespace

import pytest

from sd_explorer.core.batch_rows import MAX_SWEEP_CELLS, Row, check_cells, check_rows
from sd_explorer.core.errors import UserError
from sd_explorer.core.grid_axes import MAX_GRID_CELLS, Axis, captions, plan
from sd_explorer.core.guidance import Scale, check_scale, scale_caption
from sd_explorer.core.settings import SampleSettings

MODEL = SimpleNamespace(family="sd1", vae_scale_factor=8)  # what planning a grid reads of a model


def test_a_checked_scale_is_not_checked_again():
    scale = check_scale("7.5")
    assert isinstance(scale, Scale) and scale == 7.5 and check_scale(scale) is scale
    assert f"{scale:g}" == "7.5" and repr(scale) == "7.5" and scale_caption(check_scale(1)) == "1 · no CFG"
    settings = SampleSettings("a cat", guidance_scale=scale).validate()
    assert settings.guidance_scale is scale


def test_a_parsed_scale_axis_carries_scales_into_each_cell_and_row():
    x = Axis.parse("scale", "1, 4-8 (+4)")
    assert x.values == [1.0, 4.0, 8.0] and all(isinstance(v, Scale) for v in x.values)
    cells = plan(MODEL, SampleSettings("a cat").validate(), x)
    for value, (cell, row) in zip(x.values, cells):
        assert cell.guidance_scale is value and row.scale is value
    assert captions(SampleSettings("a cat"), x) == ["1 · no CFG", "4", "8"]


def test_a_plain_float_is_checked_at_the_batch_and_becomes_a_scale():
    rows = check_rows([Row(7.5), Row(1)])
    assert all(isinstance(r.scale, Scale) for r in rows) and rows == [Row(7.5), Row(1)]
    with pytest.raises(UserError, match=r"^guidance scale must be a finite number from 0 to 100 \(got 101\): "
                                        r"use e.g. 7.5, or 1 for no CFG.$"):
        check_rows([Row(101)])
    with pytest.raises(UserError, match=r"^guidance scale 'x' is not a number: use e.g. 7.5.$"):
        check_scale("x")
    with pytest.raises(UserError, match=r"^guidance scale must be a finite number from 0 to 100 \(got 200.0\)"):
        Axis.parse("scale", "1, 200")  # the boundary: the typed text


def test_two_cell_limits_have_two_names():
    assert (MAX_SWEEP_CELLS, MAX_GRID_CELLS) == (16, 64)
    with pytest.raises(UserError, match="17 cells is too many for one batch: use at most 16."):
        check_cells(17)
    with pytest.raises(UserError, match="65 cells is too many for one grid: use at most 64."):
        plan(MODEL, SampleSettings("a cat"), Axis("seed", list(range(65))))
