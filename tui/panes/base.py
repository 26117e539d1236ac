"""What every pane that runs model work shares: routing its ``JobUpdate`` messages.

A pane submits jobs with itself as the target; ``on_job_update`` calls ``job_started``,
``job_progress``, ``job_finished`` or ``job_failed``. Failures become a notification with the
one-line fix (cancellations are quiet), and the app keeps running.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.containers import Vertical
from textual.events import Mount

from ...core.jobs import Job, JobEvent
from ..messages import JobFailed, JobFinished, JobProgress, JobStarted, PaneReady


#: what the user calls each kind of job, for "queued behind …"
WORK_NAMES = {"load": "the model load", "train": "training", "fashion-show": "the Fashion model's samples", "fashion-noise": "the noising row",
              "fashion-save": "saving weights", "sweep": "a sweep", "exercise": "an exercise", "latents": "an encode"}


class JobPane(Vertical):
    """A pane whose work runs on the app's model worker."""

    pane_name = ""
    says_when_queued = False  #: True: the pane's own status line tells the user its job waits
    #: "#field-id" -> the label shown in that Input's (or Select's) top border, so no field is a bare number
    FIELD_LABELS: dict[str, str] = {}

    @on(Mount)
    def _label_fields(self) -> None:
        for selector, text in self.FIELD_LABELS.items():
            for widget in self.query(selector):
                target = widget.query_one("SelectCurrent") if widget.query("SelectCurrent") else widget
                target.border_title = text

    @property
    def worker(self):
        return self.app.model_worker  # type: ignore[attr-defined]

    def waiting_for(self, include_load: bool = True, include_own: bool = True) -> str:
        """What a job submitted now would wait for ("training, a sweep"), or "" when the worker is free."""
        ahead = [j for j in self.worker.runner.ahead()
                 if (include_load or j.kind != "load") and (include_own or j.context is not self)]
        return ", ".join(dict.fromkeys(WORK_NAMES.get(j.kind, j.kind) for j in ahead))

    def submit(self, kind: str, fn) -> Job:
        """Queue ``fn`` on the model worker; a notification says when other work runs first."""
        # the header already says the model is loading; this pane's own queue is its own business
        ahead = self.waiting_for(include_load=False, include_own=False)
        if ahead and not self.says_when_queued:
            self.notify(f"Queued behind {ahead}: it starts when that finishes (escape in its pane stops it).",
                        title="Worker busy", timeout=6)
        return self.worker.submit(kind, fn, target=self)

    @on(JobStarted)
    def _started(self, message: JobStarted) -> None:
        message.stop()
        self.job_started(message.event)

    @on(JobProgress)
    def _progress(self, message: JobProgress) -> None:
        message.stop()
        self.job_progress(message.event)

    @on(JobFinished)
    def _finished(self, message: JobFinished) -> None:
        message.stop()
        self.job_finished(message.event)

    @on(JobFailed)
    def _failed(self, message: JobFailed) -> None:
        message.stop()
        self.job_failed(message.event)

    def job_started(self, ev: JobEvent) -> None:
        pass

    def job_failed(self, ev: JobEvent) -> None:
        if ev.error_kind == "cancelled":
            self.notify(f"{ev.job.kind} cancelled.", timeout=3)
        else:
            self.notify(ev.message, title=f"{ev.job.kind} failed", severity="error", timeout=10)
        self.work_done(ok=False)

    def work_done(self, ok: bool = True) -> None:
        """Tell the app the pane's work settled (headless screenshots wait for this)."""
        self.post_message(PaneReady(self.pane_name))

    def autorun(self) -> None:
        """Start the work a headless screenshot of this pane shows (default: nothing to wait for)."""
        self.work_done()

    def job_progress(self, ev: JobEvent) -> None:  # pragma: no cover - overridden
        pass

    def job_finished(self, ev: JobEvent) -> Any:  # pragma: no cover - overridden
        pass
