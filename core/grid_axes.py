"""Grid requests (A1111's X/Y plot): an X axis and an optional Y axis, one cell per pair of values, as
typed, checked and captioned; ``core.grid_run.run_grid`` samples them (the one way into a sweep: a sweep
is a grid with only X: ``run_grid(model, settings, Axis("negative", values))``). No torch: a pane can
parse and caption a grid before the worker has loaded anything.

Axes: guidance scale, seed, steps, scheduler, negative prompt, prompt search/replace (A1111's "Prompt
S/R": the first value is searched in the prompt and each value replaces it), long-prompt mode (chunk vs
truncate), and where the model allows SDXL original size / crop top-left, img2img strength, colour-loss
scale. Numbers take A1111's range syntax: ``1-5`` (1,2,3,4,5), ``1-5 (+2)`` (1,3,5), ``1-10 [5]`` (five
values evenly from 1 to 10), mixed with plain values: ``1, 4-8 (+2), 12``.

Cells that differ only in what a batch row carries (scale, seed, negative, prompt S/R, SDXL size/crop)
share one batch; the others (steps, scheduler, strength, long-prompt mode, colour scale) run one group
after another (``core.grid_run``). Every cell equals the single ``generate`` with its settings (its own
seeded generator, its own row).

Each value is checked once, where it is parsed: a guidance scale becomes a ``core.guidance.Scale`` in
``Axis.values`` and goes on, unchecked again, into the cell's settings and its ``Row``.

A one-axis grid's cells stand alone (no second axis beside them), so their captions say what they vary,
as the chapter's sweeps do: ``7.5 · neg 'white hat'``, ``strength 0.3``, ``colour x50``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import numpy as np

from .batch_rows import Row
from .errors import UserError
from .guidance import check_scale, is_guided, scale_caption
from .inputs import parse_pairs
from .settings import SampleSettings
from .chunks import check_mode
from .schedulers import canonical_name

MAX_GRID_CELLS = 64  #: cells of one grid (several batches of at most core.batch_rows.MAX_SWEEP_CELLS)


@dataclass(frozen=True)
class AxisKind:
    """What an axis is: its caption, the type of its values, whether its cells can share a batch."""

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
                if not 1 <= count <= MAX_GRID_CELLS:
                    raise UserError(f"{item.strip()!r}: the count in [N] must be from 1 to {MAX_GRID_CELLS}.")
                values.extend(np.linspace(start, end, count).tolist())
                continue
            step = float(m.group(3)) if m.group(3) else (1.0 if end >= start else -1.0)
            if step == 0 or (end - start) / step < 0:
                raise UserError(f"{item.strip()!r}: the step (+N) must go from the start towards the end.")
            if (end - start) / step >= MAX_GRID_CELLS:
                raise UserError(f"{item.strip()!r} makes more than {MAX_GRID_CELLS} values: use a larger step.")
            values.extend(np.arange(start, end + step / 2 if step > 0 else end + step / 2, step).tolist())
        except ValueError:
            raise UserError(f"{item.strip()!r} is not a number or a range: write e.g. 1,2,4 or 1-5 (+2) "
                            "or 1-10 [5].") from None
    if not values:
        raise UserError("the value list is empty: write e.g. 1,2,4 or 1-5 (+2) or 1-10 [5].")
    if len(values) > MAX_GRID_CELLS:
        raise UserError(f"{len(values)} values are more than a grid's {MAX_GRID_CELLS}: sweep fewer.")
    if not all(math.isfinite(v) for v in values):  # nan, inf: no cell can run them (int(nan) raised)
        bad = next(v for v in values if not math.isfinite(v))
        raise UserError(f"{bad} is not a finite number: write numbers such as 1,2,4.")
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
        return [canonical_name(v) for v in values if v]
    if name == "long_prompt":
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
    if name in ("seed", "steps"):
        return named(name, value)
    return label(name, value)


@dataclass(frozen=True)
class Axis:
    """One axis of a grid: its name (a key of ``KINDS``) and its values, checked when parsed (``Axis.parse``)."""

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


#: the settings field each batched axis sets (prompt S/R and SDXL's pairs are handled by ``_cell``)
_SETTINGS_FIELD = {"scale": "guidance_scale", "seed": "seed", "negative": "negative_prompt"}
#: the row field each SDXL micro-conditioning axis sets
_ROW_FIELD = {"original_size": "original_size", "crop": "crop_top_left"}


def _cell(settings: SampleSettings, multiple: int, *values: tuple[Axis, object]) -> tuple[SampleSettings, Row]:
    """One cell: the settings with its axis values in place (checked, as the run will use them) and its row.

    The values were checked when their axis was parsed (a scale is a ``core.guidance.Scale``), so the
    cell's ``validate`` passes them through; it checks what only a combination can get wrong (steps x strength)."""
    changes: dict = {}
    sdxl: dict = {}
    for axis, value in values:
        if axis.name == "prompt_sr":
            changes["prompt"] = settings.prompt.replace(axis.values[0], value)
        elif axis.name in _ROW_FIELD:
            sdxl[_ROW_FIELD[axis.name]] = tuple(value)
        else:
            changes[_SETTINGS_FIELD.get(axis.name, axis.name)] = value
    cell = dataclasses.replace(settings, **changes).validate(multiple)
    return cell, Row(cell.guidance_scale, cell.negative_prompt, prompt=cell.prompt, seed=cell.seed, **sdxl)


def named(name: str, value) -> str:
    """A value with its axis named where the bare value would not say it (``seed 3``, ``CFG 5``, ``steps 20``):
    a two-axis grid's caption parts (issue 27: ``1 · 1 · no CFG`` named neither axis)."""
    if name == "scale":
        return f"CFG {value:g}" + (" (none)" if not is_guided(value) else "")
    if name in ("seed", "steps"):
        return f"{name} {value}"
    if name == "negative":
        return f"neg {value!r}" if value else "no negative"
    if name == "original_size":
        return "orig {}x{}".format(*value)
    if name == "crop":
        return "crop {},{}".format(*value)
    if name == "strength":
        return f"strength {value:g}"
    if name == "color_scale":
        return f"colour x{value:g}"
    return label(name, value)


def captions(settings: SampleSettings, x: Axis, y: Axis | None = None) -> list[str]:
    """Every cell's caption in reading order: ``x · y`` with both axes named, or a one-axis grid's own captions."""
    if y is None:
        return x.captions(settings)
    return [f"{named(x.name, a)} · {named(y.name, b)}" for b in y.values for a in x.values]


def check_axes(family: str, settings: SampleSettings, axes: list[Axis]) -> None:
    """What a grid needs of its model (``family``: ``core.model_folder.detect_family``'s), its settings and its
    axes, checked before anything loads where the family is known from the folder (the CLI)."""
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise UserError("the X and Y axes are the same: pick two different axes.")
    for axis in axes:
        if axis.name not in KINDS:
            raise UserError(f"unknown grid axis {axis.name!r}: use one of {', '.join(KINDS)}.")
        if not axis.values:
            raise UserError(f"the {KINDS[axis.name].title} axis has no values.")
        if axis.name in ("original_size", "crop") and family != "sdxl":
            raise UserError(f"the {axis.name.replace('_', ' ')} axis needs an SDXL model: load one with --model.")
        if axis.name == "strength" and settings.init_image is None:
            raise UserError("a strength sweep needs a starting image: give --init-image PATH.")
        if axis.name == "color_scale" and settings.color_target is None:
            raise UserError("a colour-scale sweep needs a target colour: give --color '#3060ff'.")
        if axis.name == "prompt_sr" and axis.values[0] not in settings.prompt:
            raise UserError(f"prompt S/R: {axis.values[0]!r} is not in the prompt: the first value is what "
                            "each value replaces.")
    cells = len(axes[0].values) * (len(axes[1].values) if len(axes) > 1 else 1)
    if cells > MAX_GRID_CELLS:
        raise UserError(f"{cells} cells is too many for one grid: use at most {MAX_GRID_CELLS}.")


def plan(model, settings: SampleSettings, x: Axis, y: Axis | None = None) -> list[tuple[SampleSettings, Row]]:
    """Every cell's settings and row, in reading order (Y rows of X cells)."""
    axes = [x] if y is None else [x, y]
    if model is None:
        raise UserError("no model is loaded: load one first (--model tiny).")
    check_axes(model.family, settings, axes)
    if y is None:
        return [_cell(settings, model.vae_scale_factor, (x, xv)) for xv in x.values]
    return [_cell(settings, model.vae_scale_factor, (x, xv), (y, yv)) for yv in y.values for xv in x.values]
