"""The rows of one batch: what each image of a request varies (``Row``), the builders, and the batch's check.

A request to ``core.sampler.sample`` is one prompt and a list of ``Row``: each row has its own guidance
scale, negative prompt and SDXL micro-conditioning (and, in a grid, its own prompt and seed). The
builders here turn what a person asks for (``n`` images, a list of scales) into rows (a grid's cells:
``core.grid_axes.plan``); ``check_rows`` is the one check of a batch, made once by ``sample``. No torch:
where each row's noise comes from is the sampler's (``core.sampler.row_generators``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .errors import UserError
from .guidance import Scale, check_scale, is_guided
from .inputs import MAX_SEED, check_seed
from .settings import SampleSettings

MAX_ROWS = 64  #: images in one batch (``generate -n``)
MAX_SWEEP_CELLS = 16  #: cells of a sweep that runs as one batch (``sweep``, ``--timeline``; a grid's batches)


@dataclass(frozen=True)
class Row:
    """One image of a batch: its guidance scale, its negative prompt, its SDXL micro-conditioning."""

    scale: Scale | float  #: a ``Scale`` once checked (``check_rows`` checks a plain float)
    negative_prompt: str = ""
    original_size: tuple[int, int] | None = None  #: SDXL (h, w); None: the output size
    crop_top_left: tuple[int, int] = (0, 0)  #: SDXL (y, x)
    target_size: tuple[int, int] | None = None  #: SDXL (h, w); None: the output size
    aesthetic_score: float = 6.0  #: SDXL refiner: the text rows' score (diffusers' default)
    negative_aesthetic_score: float = 2.5  #: SDXL refiner: the unconditional rows' score
    prompt: str | None = None  #: this row's prompt (a grid's prompt S/R); None: the settings' prompt
    seed: int | None = None  #: this row's seed (a grid's seed axis); None: the settings' seed

    @property
    def guided(self) -> bool:
        """Whether this row needs the unconditional pass (``core.guidance``: scale > 1)."""
        return is_guided(self.scale)


def check_count(n: int) -> int:
    """An image count for one batch, or a one-line ``UserError``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ROWS:
        raise UserError(f"image count must be from 1 to {MAX_ROWS} (got {n}).")
    return n


def check_cells(count: int) -> int:
    """A sweep's cell count: at least one, at most ``MAX_SWEEP_CELLS`` (one batch must fit)."""
    if count < 1:
        raise UserError("nothing to sweep: give at least one value.")
    if count > MAX_SWEEP_CELLS:
        raise UserError(f"{count} cells is too many for one batch: use at most {MAX_SWEEP_CELLS}.")
    return count


def check_rows(rows: list[Row]) -> list[Row]:
    """One batch's rows: 1 to ``MAX_ROWS``, every scale valid, every aesthetic score finite.

    A row whose scale is already a ``Scale`` (built from checked settings or a parsed axis) is not
    checked again; a plain float (a caller's own ``Row(7.5)``) is, and the row then carries the ``Scale``."""
    if not rows:
        raise UserError("nothing to sample: give at least one row (one image).")
    check_count(len(rows))
    checked = []
    for row in rows:
        scale = check_scale(row.scale)
        for score in (row.aesthetic_score, row.negative_aesthetic_score):
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise UserError(f"aesthetic score {score!r} is not a finite number: use e.g. 6 "
                                "(and 2.5 for the negative).")
        checked.append(row if scale is row.scale else replace(row, scale=scale))
    return checked


def image_rows(settings: SampleSettings, n: int = 1) -> list[Row]:
    """``n`` images at the settings' guidance scale and negative prompt, image i with seed ``seed + i`` (as
    A1111 numbers a batch): each is the one-image run of its own seed, and its PNG says which."""
    n = check_count(n)
    if check_seed(settings.seed) + n - 1 > MAX_SEED:
        raise UserError(f"--seed {settings.seed} with {n} images passes the largest seed (2^64-1): "
                        f"use a seed up to {MAX_SEED - n + 1}.")
    scale = check_scale(settings.guidance_scale)
    return [Row(scale, settings.negative_prompt, seed=settings.seed + i) for i in range(n)]


def scale_rows(settings: SampleSettings, scales: list[float]) -> list[Row]:
    """The guidance sweep's rows: one per scale, each with the settings' negative prompt."""
    if not scales:
        raise UserError("the scale list is empty: give at least one scale, e.g. 1,2,4,12.")
    check_cells(len(scales))
    return [Row(check_scale(scale), settings.negative_prompt) for scale in scales]
