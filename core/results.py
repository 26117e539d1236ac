"""What a sampling run hands back: settings, per-step progress, and the results."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from core.errors import UserError

MAX_STEPS = 1000
MAX_SIDE = 4096
MAX_SEED = 2**63 - 1


def scale_caption(scale: float) -> str:
    """``12``, ``7.5``, or ``1 · no CFG`` (scales <= 1 skip the unconditional pass)."""
    return f"{scale:g} · no CFG" if scale <= 1 else f"{scale:g}"


def check_scale(scale: float, what: str = "guidance scale") -> float:
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise UserError(f"{what} {scale!r} is not a number: use e.g. 7.5.") from None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"{what} must be a finite number >= 0 (got {scale}): use e.g. 7.5, or 1 for no CFG.")
    return value


@dataclass
class SampleSettings:
    """Everything that decides an image (together with the model)."""

    prompt: str
    negative_prompt: str = ""
    steps: int = 30
    guidance_scale: float = 7.5
    seed: int = 0
    width: int | None = None  #: None: the model's own size
    height: int | None = None
    scheduler: str | None = None  #: None: the model's own scheduler
    init_image: object = field(default=None, repr=False)  #: PIL image: image-to-image from it
    strength: float = 0.8  #: image-to-image: share of the schedule that is re-run (1 = ignore the image)
    color_target: tuple[float, float, float] | None = None  #: loss guidance towards this RGB (0-1)
    color_scale: float = 0.0  #: loss guidance strength; 0 = off
    long_prompt: str = "chunk"  #: past 75 tokens: "chunk" (A1111/ComfyUI) or "truncate" (diffusers)

    def __setattr__(self, name: str, value) -> None:
        """Any change undoes a past ``validate``: the next one checks again."""
        object.__setattr__(self, "_valid_for", None)
        object.__setattr__(self, name, value)

    def validate(self, multiple: int = 8) -> SampleSettings:
        """Raise ``UserError`` naming the fix for anything a run cannot use; returns ``self``.

        Checks once: settings validated for this size ``multiple`` and unchanged since are not checked
        again (the form checks them at the key press, ``core.sampler.sample`` trusts that).
        """
        if getattr(self, "_valid_for", None) == multiple:
            return self
        self._check(multiple)
        object.__setattr__(self, "_valid_for", multiple)
        return self

    def _check(self, multiple: int) -> None:
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise UserError("the prompt must be text.")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise UserError(f"steps must be a whole number from 1 to {MAX_STEPS} (got {self.steps}): try 30.")
        self.guidance_scale = check_scale(self.guidance_scale)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"seed must be a whole number from 0 to 2^63-1 (got {self.seed}).")
        for side, value in (("width", self.width), ("height", self.height)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < multiple or value % multiple:
                raise UserError(f"{side} {value} must be a positive multiple of {multiple}: e.g. {multiple * 64}.")
            if value > MAX_SIDE:
                raise UserError(f"{side} {value} is larger than {MAX_SIDE}: pick a smaller size.")
        if self.init_image is not None:
            if not (isinstance(self.strength, (int, float)) and math.isfinite(self.strength) and 0 < self.strength <= 1):
                raise UserError(f"strength must be in (0, 1] (got {self.strength}): try 0.6.")
            if int(self.steps * self.strength) < 1:
                raise UserError(f"{self.steps} steps x strength {self.strength:g} runs no step: raise either.")
        if not (isinstance(self.color_scale, (int, float)) and math.isfinite(self.color_scale) and self.color_scale >= 0):
            raise UserError(f"colour loss scale must be a finite number >= 0 (got {self.color_scale}).")
        from core.chunks import check_mode

        check_mode(self.long_prompt)
        if self.scheduler is not None:
            from core.schedulers import canonical_name

            self.scheduler = canonical_name(self.scheduler)


@dataclass
class StepInfo:
    """Progress after one denoising step (what a callback receives)."""

    index: int  #: 0-based step just finished
    total: int
    timestep: float
    latents: torch.Tensor = field(repr=False)  #: x_t after this step, [B, C, h, w]
    x0: torch.Tensor = field(repr=False)  #: the model's current estimate of the clean latents
    preview: np.ndarray = field(repr=False)  #: uint8 [B, h, w, 3], one pixel per latent pixel
    elapsed: float = 0.0  #: seconds since the loop started


@dataclass(frozen=True)
class GridLayout:
    """A two-axis grid's axes (``core.grid_axes``): images are in reading order, Y rows of X cells."""

    x_name: str
    x_labels: list[str]
    y_name: str = ""
    y_labels: list[str] = field(default_factory=list)
    x_values: list[str] = field(default_factory=list)  #: the values as typed back (metadata); default: labels
    y_values: list[str] = field(default_factory=list)

    @property
    def cols(self) -> int:
        return len(self.x_labels)

    def metadata(self) -> str:
        """A1111's X/Y plot fields for the saved grid's parameters."""
        text = f"X Type: {self.x_name}, X Values: \"{', '.join(self.x_values or self.x_labels)}\""
        if self.y_name:
            text += f", Y Type: {self.y_name}, Y Values: \"{', '.join(self.y_values or self.y_labels)}\""
        return text


StepCallback = Callable[[StepInfo], None]


@dataclass
class GenerationResult:
    images: list  #: PIL images, one per row (per scale in a sweep)
    scales: list[float]
    latents: torch.Tensor = field(repr=False)
    settings: SampleSettings = None
    model_name: str = ""
    scheduler_name: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    dropped_tokens: str = ""  #: prompt text beyond the 77-token window, if any
    rows: list = field(default_factory=list, repr=False)  #: the Row of each image
    labels: list[str] | None = None  #: captions of a sequential sweep (strength, colour scale)
    variants: list | None = field(default=None, repr=False)  #: per-image settings of a sequential sweep
    grid: GridLayout | None = None  #: a two-axis grid's axes (core.grid_axes)
    scheduler_names: list[str] | None = None  #: per-image scheduler (a grid with a scheduler axis)

    def caption(self, i: int) -> str:
        """A cell's caption: its scale, plus whatever else varies across the rows."""
        if self.labels:
            return self.labels[i]
        text = scale_caption(self.scales[i])
        negatives = {r.negative_prompt for r in self.rows}
        if len(negatives) > 1:
            text += f" · neg {self.rows[i].negative_prompt!r}" if self.rows[i].negative_prompt else " · no negative"
        sizes = {r.original_size for r in self.rows}
        if len(sizes) > 1 and self.rows[i].original_size:
            text += " · orig {}x{}".format(*self.rows[i].original_size)
        crops = {r.crop_top_left for r in self.rows}
        if len(crops) > 1:
            text += " · crop {},{}".format(*self.rows[i].crop_top_left)
        return text

    @property
    def captions(self) -> list[str]:
        return [self.caption(i) for i in range(len(self.images))]

    def grid_parameters(self) -> str:
        """The saved grid's ``parameters``: the first cell's, plus a two-axis grid's axes and values."""
        text = self.parameters(0)
        return text + ", " + self.grid.metadata() if self.grid else text

    def parameters(self, i: int = 0) -> str:
        """The A1111-style ``parameters`` text stored in the PNG."""
        s = self.variants[i] if self.variants else self.settings
        w, h = self.images[i].size
        lines = [s.prompt]
        negative = self.rows[i].negative_prompt if self.rows else s.negative_prompt
        if negative:
            lines.append(f"Negative prompt: {negative}")
        lines.append(
            f"Steps: {s.steps}, Sampler: {self.scheduler_names[i] if self.scheduler_names else self.scheduler_name}, CFG scale: {self.scales[i]:g}, "
            f"Seed: {s.seed}, Size: {w}x{h}, Model: {self.model_name}"
        )
        if s.init_image is not None:
            lines[-1] += f", Denoising strength: {s.strength:g}"
        row = self.rows[i] if self.rows else None
        if row is not None and row.original_size:
            lines[-1] += ", Original size: {}x{}".format(*row.original_size)
        if row is not None and row.crop_top_left != (0, 0):
            lines[-1] += ", Crop top-left: {},{}".format(*row.crop_top_left)
        if s.long_prompt != "chunk":
            lines[-1] += f", Long prompt: {s.long_prompt}"
        if s.color_target is not None and s.color_scale > 0:
            lines[-1] += ", Colour guidance: {:.0f},{:.0f},{:.0f} x {:g}".format(*(255 * c for c in s.color_target), s.color_scale)
        return "\n".join(lines)
