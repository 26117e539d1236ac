"""Messages the worker thread posts into the app (``post_message`` is thread-safe).

Every job event arrives as one message class per event, posted to the widget that submitted the job:
:class:`JobStarted`, :class:`JobProgress`, :class:`JobFinished`, :class:`JobFailed` (all :class:`JobUpdate`;
``job_message(event)`` picks the class). A progress payload is one of the small classes of
:mod:`tui.progress`; a skippable one (a step's preview) replaces a queued older one of the same job
in the target's queue (``JobProgress.can_replace``), so a fast sampler can never flood the UI: a slow
frame simply skips to the newest preview. Milestones (a batch's finished cells, an epoch's samples)
always arrive.
"""

from __future__ import annotations

from textual.message import Message

from ..core.jobs import JobEvent
from .progress import is_milestone


class JobUpdate(Message):
    """What happened to a job (see :class:`core.jobs.JobEvent`); one subclass per event."""

    def __init__(self, event: JobEvent) -> None:
        super().__init__()
        self.event = event

    @property
    def job(self):
        return self.event.job


class JobStarted(JobUpdate):
    """The job left the queue and runs on the worker."""


class JobProgress(JobUpdate):
    """The job reported progress: ``event.payload`` is a :class:`tui.progress.Progress`."""

    @property
    def payload(self):
        return self.event.payload

    def can_replace(self, message: Message) -> bool:
        """A newer skippable update of the same job and class supersedes a queued older one (milestones never)."""
        return (
            isinstance(message, JobProgress)
            and message.event.job.id == self.event.job.id
            and type(message.payload) is type(self.payload)
            and not is_milestone(self.payload)
            and not is_milestone(message.payload)
        )


class JobFinished(JobUpdate):
    """The job returned ``event.result``."""


class JobFailed(JobUpdate):
    """The job raised: ``event.error_kind`` (user, oom, cancelled, internal) and the one-line ``event.message``."""


_CLASSES = {"started": JobStarted, "progress": JobProgress, "finished": JobFinished, "failed": JobFailed}


def job_message(event: JobEvent) -> JobUpdate:
    """The message for one worker event."""
    return _CLASSES[event.event](event)


class PaneReady(Message):
    """A pane finished the work it was asked to show (headless screenshots wait for it)."""

    def __init__(self, pane: str) -> None:
        super().__init__()
        self.pane = pane


class ImageSelected(Message):
    """A generated image was selected in the sweep grid (the latents pane can take it)."""

    def __init__(self, image, caption: str) -> None:
        super().__init__()
        self.image = image
        self.caption = caption


class ImageEncoded(Message):
    """The latents pane encoded an image (the exercises' image-to-image start when none is typed)."""

    def __init__(self, image) -> None:
        super().__init__()
        self.image = image


class TimestepShown(Message):
    """The sweep pane shows another timestep: the step sampling now, the step its timeline is scrubbed to,
    or None (the final images). The schedule view (f7) marks it."""

    def __init__(self, timestep: float | None) -> None:
        super().__init__()
        self.timestep = timestep


class NoisingRowMade(Message):
    """The training pane made the chapter's noising row (the schedule view shows it too)."""

    def __init__(self, image) -> None:
        super().__init__()
        self.image = image


class EngineStatus(Message):
    """What the engine's fast paths are doing (e.g. capturing a CUDA graph, and what it cost)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
