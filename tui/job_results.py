"""What a finished job hands its pane: one small frozen class per kind of result.

A job function (on the model worker) returns one of these; the pane that submitted it gets a
:class:`tui.messages.JobFinished` whose ``event.result`` is that object and dispatches on its class
(``match ev.result: case GridSampled(result=r): ...``), as it does on the progress payloads of
:mod:`tui.progress`. Which results each kind of job may return is written in its :class:`tui.job_kinds.JobKind`.

Plain dataclasses, no Textual and no torch at import: the job functions build them on the worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing these would pull in torch
    from PIL.Image import Image

    from ..core.fashion.classifier import FidelityReport
    from ..core.fashion.trainer import TrainResult
    from ..core.models import LoadedModel
    from ..core.sampler import GenerationResult
    from ..core.vae import LatentReport


@dataclass(frozen=True)
class JobResult:
    """Base of every job's result."""


@dataclass(frozen=True)
class ModelLoaded(JobResult):
    """The model (and the SDXL refiner loaded beside it, or None) now on the worker."""

    model: LoadedModel = field(repr=False)
    refiner: LoadedModel | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GridSampled(JobResult):
    """A sweep's or an exercise's grid (``core.grid_axes.run_grid``): every cell's image and caption."""

    result: GenerationResult = field(repr=False)


@dataclass(frozen=True)
class BranchSampled(JobResult):
    """The sweep re-run from a timeline step with a new prompt (``tui.panes.sweep_branch``): the grid, the
    ``Branch`` asked for, and the branched cell's x_t after the kept steps (uint8 RGB, as the timeline maps it)."""

    result: GenerationResult = field(repr=False)
    branch: Any = None
    kept: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class RoundTripped(JobResult):
    """The latents pane's VAE round trip of one image (``core.vae.round_trip``)."""

    report: LatentReport = field(repr=False)


@dataclass(frozen=True)
class ClassSamples(JobResult):
    """A Fashion model's grid of samples per class, scored by the shipped classifier."""

    label: str  #: which model the samples come from (the caption names it)
    grid: Image = field(repr=False)  #: classes across
    report: FidelityReport = field(repr=False)


@dataclass(frozen=True)
class NoisingRow(JobResult):
    """The chapter's figure: the first training image noised at 8 timesteps, and where the data came from."""

    image: Image = field(repr=False)
    source: Any  #: the data's source (a folder, a file, or the Hub's name)


@dataclass(frozen=True)
class NoNoisingData(JobResult):
    """No noising row: there is no Fashion-MNIST data here; ``reason`` says how to point at some."""

    reason: str


@dataclass(frozen=True)
class WeightsSaved(JobResult):
    """The Fashion model's weights were written here."""

    path: Path


@dataclass(frozen=True)
class TrainingDone(JobResult):
    """A training run that finished (a stopped one ends as a cancellation, with a ``CheckpointSaved``)."""

    result: TrainResult = field(repr=False)
