"""Every kind of job the app runs on its model worker: one registry, the :class:`JobKind` enum.

Each kind carries what the user calls it (``work_name``: "Queued behind training") and the result
classes (:mod:`tui.job_results`) its job function returns. Panes submit with a ``JobKind`` and compare
kinds by identity (``ev.job.kind is JobKind.TRAIN``), never by string; they tell results apart by class.
A ``JobKind`` is a ``str`` (``JobKind.TRAIN == "train"``), so ``core.jobs`` carries it as the job's kind.
"""

from __future__ import annotations

from enum import StrEnum

from .job_results import (BranchSampled, ClassSamples, GridSampled, JobResult, ModelLoaded, NoisingRow,
                          NoNoisingData, RoundTripped, TrainingDone, WeightsSaved)


class JobKind(StrEnum):
    """A kind of job: its value (what notifications call it), its ``work_name`` and its ``results``."""

    work_name: str  #: what the user calls it, for "queued behind …"
    results: tuple[type[JobResult], ...]  #: the classes its job function may return

    def __new__(cls, value: str, work_name: str, results: tuple[type[JobResult], ...]) -> "JobKind":
        member = str.__new__(cls, value)
        member._value_ = value
        member.work_name = work_name
        member.results = results
        return member

    LOAD = "load", "the model load", (ModelLoaded,)
    TRAIN = "train", "training", (TrainingDone,)
    FASHION_SHOW = "fashion-show", "the Fashion model's samples", (ClassSamples,)
    FASHION_NOISE = "fashion-noise", "the noising row", (NoisingRow, NoNoisingData)
    FASHION_SAVE = "fashion-save", "saving weights", (WeightsSaved,)
    SWEEP = "sweep", "a sweep", (GridSampled, BranchSampled)
    EXERCISE = "exercise", "an exercise", (GridSampled,)
    LATENTS = "latents", "an encode", (RoundTripped,)


def work_name(kind: str) -> str:
    """What the user calls a job of ``kind`` (a kind from elsewhere: its own name)."""
    try:
        return JobKind(kind).work_name
    except ValueError:
        return str(kind)
