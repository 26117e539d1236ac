"""The rows of one batch: what each image of a request varies, and where its noise comes from.

A request to ``core.sampler.sample`` is one prompt and a list of ``Row`` (``core.conditioning``): each row
has its own guidance scale, negative prompt and SDXL micro-conditioning. The builders here turn what a
person asks for (``n`` images, a list of scales) into rows (a grid's cells: ``core.grid_axes.plan``); ``check_rows`` is the
one check of a batch, made once by ``sample``.
"""

from __future__ import annotations

import math

import torch

from .conditioning import Row
from .errors import UserError
from .cfg import check_scale
from .settings import SampleSettings

MAX_ROWS = 64  #: images in one batch (``generate -n``)
MAX_CELLS = 16  #: cells of one grid (a sweep)


def check_count(n: int) -> int:
    """An image count for one batch, or a one-line ``UserError``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ROWS:
        raise UserError(f"image count must be from 1 to {MAX_ROWS} (got {n}).")
    return n


def check_cells(count: int) -> int:
    """A grid's cell count: at least one, at most ``MAX_CELLS`` (one batch must fit)."""
    if count < 1:
        raise UserError("nothing to sweep: give at least one value.")
    if count > MAX_CELLS:
        raise UserError(f"{count} cells is too many for one batch: use at most {MAX_CELLS}.")
    return count


def check_rows(rows: list[Row]) -> list[Row]:
    """One batch's rows: 1 to ``MAX_ROWS``, every scale valid, every aesthetic score finite."""
    if not rows:
        raise UserError("nothing to sample: give at least one row (one image).")
    check_count(len(rows))
    for row in rows:
        check_scale(row.scale)
        for score in (row.aesthetic_score, row.negative_aesthetic_score):
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise UserError(f"aesthetic score {score!r} is not a finite number: use e.g. 6 "
                                "(and 2.5 for the negative).")
    return rows


def image_rows(settings: SampleSettings, n: int = 1) -> list[Row]:
    """``n`` images at the settings' guidance scale and negative prompt."""
    return [Row(check_scale(settings.guidance_scale), settings.negative_prompt)] * check_count(n)


def scale_rows(settings: SampleSettings, scales: list[float]) -> list[Row]:
    """The guidance sweep's rows: one per scale, each with the settings' negative prompt."""
    if not scales:
        raise UserError("the scale list is empty: give at least one scale, e.g. 1,2,4,12.")
    check_cells(len(scales))
    return [Row(check_scale(scale), settings.negative_prompt) for scale in scales]


def row_generators(settings: SampleSettings, rows: list[Row]) -> list[torch.Generator]:
    """A CPU generator per row, each seeded with its row's seed (a grid's seed axis) or else the settings':
    cell i equals a one-row run."""
    return [torch.Generator("cpu").manual_seed(settings.seed if r.seed is None else r.seed) for r in rows]


def batch_generator(settings: SampleSettings) -> torch.Generator:
    """One CPU generator for the whole batch: its rows draw different noise from one seed (diffusers'
    ``num_images_per_prompt``), and a seed gives the same image on CPU and GPU."""
    return torch.Generator("cpu").manual_seed(settings.seed)
