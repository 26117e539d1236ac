"""Sweep axes: what varies across a grid's cells, with everything else fixed (one seed).

Batched axes (one UNet call per step for all cells): guidance scale, negative prompt, SDXL original
size and crop. Sequential axes (one run per cell, because the cells start from different points of
the schedule or need per-cell gradients): img2img strength, colour-loss scale.
"""

from __future__ import annotations

import dataclasses
import threading

import torch

from core.conditioning import Row
from core.errors import UserError
from core.refiner import DEFAULT_FRACTION
from core.results import GenerationResult, SampleSettings, check_scale
from core.rows import axis_rows

BATCHED = ("scale", "negative", "original_size", "crop")
SEQUENTIAL = ("strength", "color_scale")
AXES = BATCHED + SEQUENTIAL


def parse_pairs(text: str, what: str) -> list[tuple[int, int]]:
    """``256x256,1024x1024`` -> [(256, 256), (1024, 1024)] (height x width, as SDXL's time ids)."""
    pairs = []
    for item in [p for p in text.replace(" ", "").split(",") if p]:
        try:
            a, b = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise UserError(f"{what} {item!r} is not AxB: use e.g. 256x256,1024x1024.") from None
        if a < 0 or b < 0 or a > 16384 or b > 16384:
            raise UserError(f"{what} {item!r} is out of range: use values from 0 to 16384.")
        pairs.append((a, b))
    if not pairs:
        raise UserError(f"the {what} list is empty: give at least one value, e.g. 256x256,1024x1024.")
    return pairs


def run_axis(model, settings: SampleSettings, axis: str, values: list, callback=None,
             cancel: threading.Event | None = None, *, refiner=None,
             handoff: float = DEFAULT_FRACTION) -> GenerationResult:
    """One grid: ``values`` along ``axis``; returns one image per value, captioned by it.

    Every cell goes through ``core.sampler.sample`` (with the refiner, when one is given): a batched
    axis as one request of one row per value, a sequential axis as one request per value."""
    from core.sampler import sample

    if axis not in AXES:
        raise UserError(f"unknown sweep axis {axis!r}: use one of {', '.join(AXES)}.")
    if not values:
        raise UserError("nothing to sweep: give at least one value.")
    if axis in ("original_size", "crop") and (model is None or model.family != "sdxl"):
        raise UserError(f"the {axis.replace('_', ' ')} axis needs an SDXL model: load one with --model.")
    if axis in BATCHED:
        return sample(model, settings, axis_rows(settings, axis, values), refiner=refiner, handoff=handoff,
                      callback=callback, cancel=cancel)
    if axis == "strength" and settings.init_image is None:
        raise UserError("a strength sweep needs a starting image: give --init-image PATH.")
    if axis == "color_scale" and settings.color_target is None:
        raise UserError("a colour-scale sweep needs a target colour: give --color '#3060ff'.")
    results = []
    for value in values:
        variant = dataclasses.replace(settings, **{axis: float(value)})
        rows = [Row(check_scale(variant.guidance_scale), variant.negative_prompt)]
        results.append(sample(model, variant, rows, refiner=refiner, handoff=handoff, callback=callback,
                              cancel=cancel))
    first = results[0]
    label = {"strength": "strength {:g}", "color_scale": "colour x{:g}"}[axis]
    return dataclasses.replace(
        first, images=[r.images[0] for r in results], latents=torch.cat([r.latents for r in results]),
        scales=[r.scales[0] for r in results], rows=[r.rows[0] for r in results],
        labels=[label.format(float(v)) for v in values],
        timings={"total_s": sum(r.timings["total_s"] for r in results)},
        variants=[r.settings for r in results],
    )
