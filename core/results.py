"""What a sampling run hands back: per-step progress (``StepInfo``) and the images with their settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .guidance import scale_caption
from .settings import SampleSettings


@dataclass
class StepInfo:
    """Progress after one denoising step (what a callback receives)."""

    index: int  #: 0-based step just finished
    total: int
    timestep: float
    latents: torch.Tensor = field(repr=False)  #: x_t after this step, [B, C, h, w]
    x0: torch.Tensor = field(repr=False)  #: the model's current estimate of the clean latents
    preview: np.ndarray | None = field(repr=False)  #: uint8 [B, h, w, 3], one pixel per latent pixel; None for a
    #: callback marked ``core.step_reports.without_previews`` (a progress bar: the loop made none)
    elapsed: float = 0.0  #: seconds since the loop started
    step: int | None = None  #: the step's place in the full schedule (prompt editing's step index); None: ``index``


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
    labels: list[str] | None = None  #: a grid's cell captions (core.grid_axes)
    variants: list | None = field(default=None, repr=False)  #: a grid's per-cell settings
    grid: GridLayout | None = None  #: a two-axis grid's axes (core.grid_axes)
    scheduler_names: list[str] | None = None  #: per-image scheduler (a grid with a scheduler axis)
    #: per image, its prompt's and negative prompt's schedule (``core.prompt_editing.RowSchedule``): prompt edits
    edits: list = field(default_factory=list, repr=False)

    @property
    def switches(self) -> list[int]:
        """The 0-based steps where some image's prompt or negative prompt changes (prompt editing)."""
        return sorted({k for e in self.edits for k in e.switches})

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

    def seed(self, i: int = 0) -> int:
        """The seed that reproduces image ``i`` alone: its row's (``generate``'s seed + i, a seed axis), else
        the settings'."""
        row = self.rows[i] if self.rows else None
        if row is not None and row.seed is not None:
            return row.seed
        return (self.variants[i] if self.variants else self.settings).seed

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
            f"Seed: {self.seed(i)}, Size: {w}x{h}, Model: {self.model_name}"
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
        if s.color_target is not None:  # named at scale 0 too: a colour-scale grid's first cell is the plain one
            lines[-1] += ", Colour guidance: {:.0f},{:.0f},{:.0f} x {:g}".format(*(255 * c for c in s.color_target), s.color_scale)
        return "\n".join(lines)

    def grid_parameters(self, axis: str = "scale") -> str:
        """The saved grid's text (CLI and app alike): the first cell's parameters (all the scales for a
        guidance sweep: a one-axis grid of scales, or ``axis="scale"`` for a result without a grid
        layout), a grid's axes and values (A1111's X/Y fields), and a ``Grid:`` line with every cell's
        caption."""
        text = self.parameters(0)
        if (self.grid.x_name == "CFG scale" and not self.grid.y_name) if self.grid else axis == "scale":
            text = text.replace(f"CFG scale: {self.scales[0]:g}", "CFG scales: " + ", ".join(f"{s:g}" for s in self.scales), 1)
        if self.grid:
            text += ", " + self.grid.metadata()
        return text + "\nGrid: " + " | ".join(self.captions)
