"""What a job tells its pane while it runs: one small frozen class per kind of progress event.

A job function (on the model worker) reports with ``job.progress(StepPreview(...))``; the pane that
submitted it gets a :class:`tui.messages.JobProgress` whose ``event.payload`` is that object and
dispatches on its class (``match payload: case StepPreview(): ...``). Whether an update may be skipped
is a property of its class: a :class:`Progress` is a *milestone* (it must arrive) unless the class says
``milestone = False``, in which case a newer update of the same class and job replaces a queued one
(``JobProgress.can_replace``), so a fast sampler never floods the UI. Skippable updates carry their
whole state (a preview, the loss history so far), so a skipped one loses nothing.

Plain dataclasses, no Textual: the job functions build them on the worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Progress:
    """Base of every progress payload."""

    #: True: every update must reach the pane (never replaced by a newer one)
    milestone: ClassVar[bool] = True


# -- sampling (sweep and exercises panes) -------------------------------------------------------
@dataclass(frozen=True)
class StepPreview(Progress):
    """A denoising step finished: its x0 previews, one per image of the batch (skippable)."""

    milestone: ClassVar[bool] = False
    index: int  #: the step just done, from 0
    total: int  #: steps in the run
    timestep: float  #: the scheduler's timestep of that step
    preview: list  #: PIL images, the x0 estimate of each image of the running batch (see BatchStarted)


@dataclass(frozen=True)
class BatchStarted(Progress):
    """A batch of a grid starts sampling: its cells (the previews that follow land in them)."""

    cells: tuple[int, ...]


@dataclass(frozen=True)
class CellsDone(Progress):
    """A batch of a grid is done: its cells' finished images (the grid fills in batch by batch)."""

    cells: tuple[int, ...]
    images: list  #: PIL images, one per cell


@dataclass(frozen=True)
class InsightCollected(Progress):
    """The sweep's per-step x0 estimates and heat maps (a ``SweepInsight``), sent before its result."""

    insight: Any


# -- training (the training pane) ---------------------------------------------------------------
@dataclass(frozen=True)
class PhaseText(Progress):
    """What the run is doing now, in words (``loading data from …``, ``training on cuda…``)."""

    text: str


@dataclass(frozen=True)
class DataLoaded(Progress):
    """The training data loaded: where from (``None``: the Hub) and how many images."""

    source: str | None
    count: int


@dataclass(frozen=True)
class TrainerReady(Progress):
    """The run's ``core.fashion.Trainer`` is built; the pane keeps it (set on the UI thread, not the worker)."""

    trainer: Any


@dataclass(frozen=True)
class TrainingStep(Progress):
    """A logged training step: its ``StepStats`` and the whole ``(step, loss)`` history (skippable)."""

    milestone: ClassVar[bool] = False
    stats: Any
    history: list[tuple[int, float]]


@dataclass(frozen=True)
class EpochSamples(Progress):
    """An epoch ended: its ``EpochStats``, the global step, the per-class sample grid and its fidelity."""

    stats: Any
    step: int
    grid: Any  #: a PIL image, classes across
    report: Any  #: the classifier's ``FidelityReport``


@dataclass(frozen=True)
class CheckpointSaved(Progress):
    """A stopped run wrote this resumable checkpoint (sent just before the cancellation)."""

    path: str


def is_milestone(payload: object) -> bool:
    """Whether a progress payload must arrive (anything that is not a skippable :class:`Progress` must)."""
    return not isinstance(payload, Progress) or payload.milestone
