"""What a sampling run hands back: settings, per-step progress, and the results."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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

    def validate(self, multiple: int = 8) -> SampleSettings:
        """Raise ``UserError`` naming the fix for anything a run cannot use."""
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
        if self.scheduler is not None:
            from core.schedulers import canonical_name

            self.scheduler = canonical_name(self.scheduler)
        return self


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

    @property
    def captions(self) -> list[str]:
        return [scale_caption(s) for s in self.scales]

    def parameters(self, i: int = 0) -> str:
        """The A1111-style ``parameters`` text stored in the PNG."""
        s = self.settings
        w, h = self.images[i].size
        lines = [s.prompt]
        if s.negative_prompt:
            lines.append(f"Negative prompt: {s.negative_prompt}")
        lines.append(
            f"Steps: {s.steps}, Sampler: {self.scheduler_name}, CFG scale: {self.scales[i]:g}, "
            f"Seed: {s.seed}, Size: {w}x{h}, Model: {self.model_name}"
        )
        return "\n".join(lines)
