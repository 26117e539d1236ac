"""What every pane that runs model work shares: routing its ``JobUpdate`` messages.

A pane submits jobs (of a :class:`tui.job_kinds.JobKind`) with itself as the target; its ``JobUpdate``
messages call ``job_started``, ``job_progress``, ``job_finished`` (``ev.result``: a :mod:`tui.job_results`
class) or ``job_failed``. ``self.ctx`` is the app's shared state, typed (:mod:`tui.app_context`). Failures become a notification with the
one-line fix (cancellations are quiet), and the app keeps running.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.containers import Vertical
from textual.events import Mount

from ...core.jobs import Job, JobEvent
from ..app_context import AppContext, app_context
from ..job_kinds import JobKind, work_name
from ..messages import JobFailed, JobFinished, JobProgress, JobStarted, PaneReady


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
    def ctx(self) -> AppContext:
        """The app's shared state (settings, the prompts, what other panes made), typed."""
        return app_context(self)

    @property
    def worker(self):
        """The app's model worker (``tui.worker.ModelWorker``)."""
        return self.ctx.model_worker

    def waiting_for(self, include_load: bool = True, include_own: bool = True) -> str:
        """What a job submitted now would wait for ("training, a sweep"), or "" when the worker is free."""
        ahead = [j for j in self.worker.runner.ahead()
                 if (include_load or j.kind is not JobKind.LOAD) and (include_own or j.context is not self)]
        return ", ".join(dict.fromkeys(work_name(j.kind) for j in ahead))

    def submit(self, kind: JobKind, fn) -> Job:
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
        if ev.cancelled:
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
