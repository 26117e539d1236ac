"""Grids (A1111's X/Y plot): an X axis and an optional Y axis, one cell per pair of values; the one way
into a sweep (a sweep is a grid with only X: ``run_grid(model, settings, Axis("negative", values))``).

Axes: guidance scale, seed, steps, scheduler, negative prompt, prompt search/replace (A1111's "Prompt
S/R": the first value is searched in the prompt and each value replaces it), long-prompt mode (chunk vs
truncate), and where the model allows SDXL original size / crop top-left, img2img strength, colour-loss
scale. Numbers take A1111's range syntax: ``1-5`` (1,2,3,4,5), ``1-5 (+2)`` (1,3,5), ``1-10 [5]`` (five
values evenly from 1 to 10), mixed with plain values: ``1, 4-8 (+2), 12``.

Cells that differ only in what a batch row carries (scale, seed, negative, prompt S/R, SDXL size/crop)
share one batch; the others (steps, scheduler, strength, long-prompt mode, colour scale) run one group
after another, and ``on_cells`` hears of each group as it finishes so a grid fills in. Every cell equals
the single ``generate`` with its settings (its own seeded generator, its own row).

A one-axis grid's cells stand alone (no second axis beside them), so their captions say what they vary,
as the chapter's sweeps do: ``7.5 · neg 'white hat'``, ``strength 0.3``, ``colour x50``.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .conditioning import Row
from .errors import UserError
from .cfg import check_scale, scale_caption
from .fields import parse_pairs
from .results import GenerationResult, GridLayout
from .settings import SampleSettings
from .rows import MAX_CELLS as BATCH

MAX_CELLS = 64  #: cells of one grid (several batches of at most core.rows.MAX_CELLS)


@dataclass(frozen=True)
class AxisKind:
    title: str  #: caption and metadata name
    kind: str  #: "float", "int", "text", "pair", "choice"
    batched: bool  #: cells along it can share a batch


KINDS: dict[str, AxisKind] = {
    "scale": AxisKind("CFG scale", "float", True),
    "seed": AxisKind("Seed", "int", True),
    "negative": AxisKind("Negative prompt", "text", True),
    "prompt_sr": AxisKind("Prompt S/R", "text", True),
    "original_size": AxisKind("Original size", "pair", True),
    "crop": AxisKind("Crop top-left", "pair", True),
    "steps": AxisKind("Steps", "int", False),
    "scheduler": AxisKind("Sampler", "choice", False),
    "strength": AxisKind("Denoising strength", "float", False),
    "long_prompt": AxisKind("Long prompt", "choice", False),
    "color_scale": AxisKind("Colour scale", "float", False),
}

#: axes whose cells run one batch per value (each cell's run starts again at step 0)
SEQUENTIAL = tuple(name for name, kind in KINDS.items() if not kind.batched)

_RANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?)\s*-\s*([+-]?\d+(?:\.\d*)?)\s*(?:\(\s*([+-]?\d+(?:\.\d*)?)\s*\)|\[\s*(\d+)\s*\])?\s*$")


def parse_numbers(text: str, integer: bool = False) -> list:
    """A1111's number lists: ``1, 2, 4``; ``1-5`` (step 1); ``1-5 (+2)`` (a step); ``1-10 [5]`` (a count)."""
    values: list = []
    for item in [p for p in text.replace(";", ",").split(",") if p.strip()]:
        m = _RANGE.match(item)
        try:
            if m is None:
                values.append(float(item))
                continue
            start, end = float(m.group(1)), float(m.group(2))
            if m.group(4) is not None:
                count = int(m.group(4))
                if not 1 <= count <= MAX_CELLS:
                    raise UserError(f"{item.strip()!r}: the count in [N] must be from 1 to {MAX_CELLS}.")
                values.extend(np.linspace(start, end, count).tolist())
                continue
            step = float(m.group(3)) if m.group(3) else (1.0 if end >= start else -1.0)
            if step == 0 or (end - start) / step < 0:
                raise UserError(f"{item.strip()!r}: the step (+N) must go from the start towards the end.")
            if (end - start) / step >= MAX_CELLS:
                raise UserError(f"{item.strip()!r} makes more than {MAX_CELLS} values: use a larger step.")
            values.extend(np.arange(start, end + step / 2 if step > 0 else end + step / 2, step).tolist())
        except ValueError:
            raise UserError(f"{item.strip()!r} is not a number or a range: write e.g. 1,2,4 or 1-5 (+2) "
                            "or 1-10 [5].") from None
    if not values:
        raise UserError("the value list is empty: write e.g. 1,2,4 or 1-5 (+2) or 1-10 [5].")
    if integer:  # as A1111: whole numbers truncate (1-10 [5] -> 1, 3, 5, 7, 10)
        values = [int(v) for v in values]
    return values


def _texts(text: str) -> list[str]:
    """``a|white hat|hat`` (``|`` keeps commas inside values) or ``a, b, c``."""
    sep = "|" if "|" in text else ","
    return [v.strip() for v in text.split(sep)]


def parse_axis(name: str, text: str) -> list:
    """The values of axis ``name`` typed as ``text``; ``UserError`` names the fix."""
    if name not in KINDS:
        raise UserError(f"unknown grid axis {name!r}: use one of {', '.join(KINDS)}.")
    kind = KINDS[name].kind
    if kind in ("float", "int"):
        values = parse_numbers(text, integer=kind == "int")
        if name == "scale":
            values = [check_scale(v) for v in values]
        return values
    if kind == "pair":
        return parse_pairs(text, KINDS[name].title.lower())
    values = _texts(text)
    if name == "scheduler":
        from .schedulers import canonical_name

        return [canonical_name(v) for v in values if v]
    if name == "long_prompt":
        from .chunks import check_mode

        return [check_mode(v) for v in values if v]
    if name == "prompt_sr" and not values[0]:
        raise UserError("prompt S/R: the first value is the text to search for in the prompt; it cannot be empty.")
    return values


def label(name: str, value) -> str:
    """A value as the grid's caption shows it."""
    if name == "scale":
        return scale_caption(value)
    if name in ("original_size", "crop"):
        return "{}x{}".format(*value)
    if isinstance(value, float):
        return f"{value:g}"
    if name == "negative" and value == "":
        return "no negative"
    return str(value)


def caption(name: str, value, settings: SampleSettings) -> str:
    """A one-axis grid's cell caption: the value, naming its axis where a bare value would not say it
    (with the fixed guidance scale before a row's own conditioning, as the chapter's sweeps show it)."""
    scale = scale_caption(settings.guidance_scale)
    if name == "negative":
        return f"{scale} · neg {value!r}" if value else f"{scale} · no negative"
    if name == "original_size":
        return f"{scale} · orig {value[0]}x{value[1]}"
    if name == "crop":
        return f"{scale} · crop {value[0]},{value[1]}"
    if name == "strength":
        return f"strength {value:g}"
    if name == "color_scale":
        return f"colour x{value:g}"
    return label(name, value)


@dataclass(frozen=True)
class Axis:
    name: str
    values: list

    @classmethod
    def parse(cls, name: str, text: str) -> "Axis":
        return cls(name, parse_axis(name, text))

    @property
    def labels(self) -> list[str]:
        return [label(self.name, v) for v in self.values]

    def captions(self, settings: SampleSettings) -> list[str]:
        """The cells' captions when this is a grid's only axis (``caption``)."""
        return [caption(self.name, v, settings) for v in self.values]

    @property
    def texts(self) -> list[str]:
        """The values as plain text (the saved grid's metadata)."""
        return [f"{v:g}" if isinstance(v, float) else ("{}x{}".format(*v) if isinstance(v, tuple) else str(v))
                for v in self.values]


def _apply(settings: dict, row: dict, axis: Axis, value) -> None:
    """Put one axis value into a cell's settings fields and row fields."""
    name = axis.name
    if name == "scale":
        settings["guidance_scale"] = value
    elif name == "seed":
        settings["seed"] = value
    elif name == "negative":
        settings["negative_prompt"] = value
    elif name == "prompt_sr":
        settings["prompt"] = settings["prompt"].replace(axis.values[0], value)
    elif name in ("original_size", "crop"):
        row["original_size" if name == "original_size" else "crop_top_left"] = tuple(value)
    else:
        settings[name] = value


def captions(settings: SampleSettings, x: Axis, y: Axis | None = None) -> list[str]:
    """Every cell's caption in reading order: ``x · y`` labels, or a one-axis grid's own captions."""
    if y is None:
        return x.captions(settings)
    return [f"{a} · {b}" for b in y.labels for a in x.labels]


def _check(model, settings: SampleSettings, axes: list[Axis]) -> None:
    if model is None:
        raise UserError("no model is loaded: load one first (--model tiny).")
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise UserError("the X and Y axes are the same: pick two different axes.")
    for axis in axes:
        if axis.name not in KINDS:
            raise UserError(f"unknown grid axis {axis.name!r}: use one of {', '.join(KINDS)}.")
        if not axis.values:
            raise UserError(f"the {KINDS[axis.name].title} axis has no values.")
        if axis.name in ("original_size", "crop") and model.family != "sdxl":
            raise UserError(f"the {axis.name.replace('_', ' ')} axis needs an SDXL model: load one with --model.")
        if axis.name == "strength" and settings.init_image is None:
            raise UserError("a strength sweep needs a starting image: give --init-image PATH.")
        if axis.name == "color_scale" and settings.color_target is None:
            raise UserError("a colour-scale sweep needs a target colour: give --color '#3060ff'.")
        if axis.name == "prompt_sr" and axis.values[0] not in settings.prompt:
            raise UserError(f"prompt S/R: {axis.values[0]!r} is not in the prompt: the first value is what "
                            "each value replaces.")
    cells = len(axes[0].values) * (len(axes[1].values) if len(axes) > 1 else 1)
    if cells > MAX_CELLS:
        raise UserError(f"{cells} cells is too many for one grid: use at most {MAX_CELLS}.")


def plan(model, settings: SampleSettings, x: Axis, y: Axis | None = None) -> list[tuple[SampleSettings, Row]]:
    """Every cell's settings and row, in reading order (Y rows of X cells)."""
    axes = [x] if y is None else [x, y]
    _check(model, settings, axes)
    cells = []
    for yv in (y.values if y else [None]):
        for xv in x.values:
            fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
            row: dict = {}
            for axis, value in ((x, xv), (y, yv)):
                if axis is not None:
                    _apply(fields, row, axis, value)
            cell = SampleSettings(**fields).validate(model.vae_scale_factor)
            cells.append((cell, Row(cell.guidance_scale, cell.negative_prompt, prompt=cell.prompt, seed=cell.seed,
                                    **row)))
    return cells


def _group_key(model, cell: SampleSettings) -> tuple:
    """Cells with equal keys run in one batch: the sequential fields, and the sequence length the text
    conditioning pads to (so a cell's padding, hence its image, is that of its single run)."""
    from .chunks import chunk_prompt

    chunks = len(chunk_prompt(model.tokenizer, cell.prompt, cell.long_prompt).chunks)
    if cell.guidance_scale > 1:
        chunks = max(chunks, len(chunk_prompt(model.tokenizer, cell.negative_prompt, cell.long_prompt).chunks))
    return (cell.steps, cell.scheduler, cell.strength, cell.long_prompt, cell.color_scale, chunks)


def batches(model, cells: list[tuple[SampleSettings, Row]]) -> list[list[int]]:
    """The cells' indices grouped into batches, in the order they run: cells with equal ``_group_key``
    share a batch of at most ``core.rows.MAX_CELLS`` rows."""
    groups: dict[tuple, list[int]] = {}
    for i, (cell, _) in enumerate(cells):
        groups.setdefault(_group_key(model, cell), []).append(i)
    return [idx[k:k + BATCH] for idx in groups.values() for k in range(0, len(idx), BATCH)]


def run_grid(model, settings: SampleSettings, x: Axis, y: Axis | None = None, callback=None,
             cancel: threading.Event | None = None, *, refiner=None, handoff: float | None = None,
             on_cells: Callable[[list[int], GenerationResult], None] | None = None,
             on_batch: Callable[[list[int]], None] | None = None) -> GenerationResult:
    """Sample the grid; ``on_batch(indices)`` before and ``on_cells(indices, batch_result)`` after each
    batch (the grid fills in). ``refiner``: every batch hands off to an SDXL refiner at ``handoff``."""
    from .sampler import sample

    cells = plan(model, settings, x, y)
    order = batches(model, cells)
    images, latents, names, total = [None] * len(cells), [None] * len(cells), [""] * len(cells), 0.0
    dropped = ""
    for batch in order:
        first = cells[batch[0]][0]
        if on_batch is not None:
            on_batch(batch)
        kwargs = {} if handoff is None else {"handoff": handoff}
        result = sample(model, first, [cells[i][1] for i in batch], refiner=refiner, callback=callback,
                        cancel=cancel, **kwargs)
        for j, i in enumerate(batch):
            images[i], latents[i], names[i] = result.images[j], result.latents[j:j + 1], result.scheduler_name
        total += result.timings["total_s"]
        dropped = dropped or result.dropped_tokens
        if on_cells is not None:
            on_cells(batch, result)
    texts = captions(settings, x, y)
    layout = GridLayout(KINDS[x.name].title, x.labels if y else texts, KINDS[y.name].title if y else "",
                        y.labels if y else [], x.texts, y.texts if y else [])
    extra, kind = {}, GenerationResult
    if refiner is not None:  # the hand-off's names and split, as a single refined run reports them
        from .refiner import RefinedResult

        kind = RefinedResult
        extra = {k: getattr(result, k) for k in ("refiner_name", "high_noise_frac", "base_steps", "refiner_steps")}
    return kind(
        images=images, scales=[c.guidance_scale for c, _ in cells], latents=torch.cat(latents), settings=settings,
        model_name=model.name, scheduler_name=names[0], timings={"total_s": total, "batches": len(order)},
        dropped_tokens=dropped,
        rows=[r for _, r in cells], labels=texts, variants=[c for c, _ in cells], grid=layout,
        scheduler_names=names, **extra,
    )
