"""The denoising timeline: the x0 estimate and x_t of every step of one run, per cell.

``Timeline`` is a per-step callback (``core.sampler``'s ``callback``; chain another with
``timeline.chain(cb)``). It keeps latent-sized copies on the model's device (no host sync: a
clone is queued like any other kernel), with the step's timestep and sigma. Afterwards
``previews(model)`` maps every kept x0 (or x_t) to RGB at one pixel per latent pixel, for scrubbing,
and ``strip(model, steps)`` decodes x0 at chosen steps with the VAE: the chapter's figure of the
model's prediction at each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .errors import UserError
from .noise_schedule import schedule_of
from .preview import latents_to_rgb
from .step_reports import same_needs

DEFAULT_STRIP = 6  #: steps in a strip when none are named


@dataclass
class Frame:
    """One step of the run: what the model predicted and where the sampler now is."""

    index: int  #: 0-based step
    timestep: float
    sigma: float  #: sqrt((1 - ᾱ_t) / ᾱ_t) at the step's timestep
    x0: torch.Tensor = field(repr=False)  #: [rows, C, h, w]
    xt: torch.Tensor = field(repr=False)  #: the latents after the step, [rows, C, h, w]
    step: int | None = None  #: its place in the full schedule (img2img starts part-way); None: ``index``

    def describe(self, total: int, edits: list | None = None) -> str:
        """``step 3/30 · t=901 · σ=4.1``; with ``edits`` (the rows' ``core.prompt_editing.RowSchedule``, e.g. a
        result's ``.edits``) a step where a prompt switches says so: ``… · prompt 'a sneaker' → 'a boot'``."""
        line = f"step {self.index + 1}/{total} · t={self.timestep:.0f} · σ={self.sigma:.3g}"
        step = self.index if self.step is None else self.step
        changes = [c for c in dict.fromkeys(e.change_at(step) for e in edits or []) if c is not None]
        return " · ".join([line, " | ".join(changes)]) if changes else line


class Timeline:
    """Collects a ``Frame`` per step of the run it is the callback of (a new run starts afresh)."""

    def __init__(self, model) -> None:
        self.schedule = schedule_of(model.scheduler)
        self.frames: list[Frame] = []
        self.total = 0

    def __call__(self, info) -> None:
        if info.index == 0:  # a new run (a refined run's second model continues the count)
            self.frames = []
        self.total = info.total
        self.frames.append(Frame(info.index, info.timestep, self.schedule.sigma(info.timestep),
                                 info.x0.detach().clone(), info.latents.detach().clone(), info.step))

    def chain(self, callback: Callable | None) -> Callable:
        """A callback that records here, then calls ``callback`` (if any)."""
        def both(info) -> None:
            self(info)
            if callback is not None:
                callback(info)
        return same_needs(both, callback)  # the timeline itself keeps x0 and x_t, not the previews

    def previews(self, model, which: str = "x0") -> np.ndarray:
        """uint8 ``[steps, rows, h, w, 3]``: every frame's x0 (or ``xt``) mapped to RGB."""
        if not self.frames:
            raise UserError("no timeline yet: run a sweep first.")
        stack = torch.stack([getattr(f, which) for f in self.frames])  # [steps, rows, C, h, w]
        rgb = latents_to_rgb(stack.flatten(0, 1), model.preview_factors, model.preview_bias)
        return rgb.reshape(len(self.frames), -1, *rgb.shape[1:])

    def strip(self, model, steps: list[int]) -> tuple[list, list[str]]:
        """x0 decoded at the 1-based ``steps``: images ordered cell by cell (row-major: one row per
        cell, one column per step) and their captions."""
        from .sampler import decode

        frames = [self.frames[s - 1] for s in steps]
        per_step = [decode(model, f.x0) for f in frames]  # [steps][rows]
        rows = len(per_step[0])
        images = [per_step[j][i] for i in range(rows) for j in range(len(frames))]
        captions = [f"step {f.index + 1} t={f.timestep:.0f}" for _ in range(rows) for f in frames]
        return images, captions


def parse_steps(text: str, total: int) -> list[int]:
    """``"1,10,30"`` -> [1, 10, 30] (1-based, within ``total``); ``""`` -> ``DEFAULT_STRIP`` spread evenly."""
    if not text.strip():
        count = min(DEFAULT_STRIP, total)
        return sorted({int(round(v)) for v in np.linspace(1, total, count)})
    steps = []
    for item in [p for p in text.replace(" ", "").split(",") if p]:
        try:
            step = int(item)
        except ValueError:
            raise UserError(f"timeline step {item!r} is not a whole number: use e.g. 1,10,20,30.") from None
        if not 1 <= step <= total:
            raise UserError(f"timeline step {step} is outside 1..{total}: pick steps of the run.")
        steps.append(step)
    if not steps:
        raise UserError("the timeline's step list is empty: give e.g. 1,10,20,30, or nothing for an even spread.")
    return list(dict.fromkeys(steps))  # a step named twice is one column: at most ``total`` of them
