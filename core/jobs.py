"""One long-lived worker thread that owns the models and the device; jobs reach it through a queue.

The UI never touches the GPU itself: it submits a :class:`Job` (a function of the job) and gets
:class:`JobEvent` callbacks back *on the worker thread* — started, progress, finished, failed.
Each job has its own cancel :class:`threading.Event`; functions pass it to the core
(``sweep(..., cancel=job.cancel)``), which raises :class:`core.errors.Cancelled` within one step.
A failing or cancelled job never kills the thread: the next job runs normally.

Errors become one line a person can act on (:func:`describe_error`): ``UserError`` keeps its
message, out-of-memory suggests smaller work, anything else is an internal error (``core.crash``): one
line naming the exception and the log file that holds the traceback. This module is UI-free (no textual, no rich) so it is testable alone.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal
import gc

from .errors import Cancelled, UserError
from .crash import message, record

log = logging.getLogger("sd_explorer.jobs")

ErrorKind = Literal["user", "oom", "cancelled", "internal"]
EventKind = Literal["started", "progress", "finished", "failed"]


@dataclass
class Job:
    """A unit of work for the worker thread. ``fn(job)`` does the work and returns its result."""

    kind: str  #: what it is ("load", "sweep", "latents", "train", ...), for routing replies
    fn: Callable[["Job"], Any]
    id: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    context: Any = None  #: anything the submitter wants back with every event (e.g. a target widget)
    resources: dict = field(default_factory=dict, repr=False)  #: the worker's shared state
    _emit: Callable[["JobEvent"], None] | None = field(default=None, repr=False)

    def progress(self, payload: Any) -> None:
        """Report progress (called by ``fn`` on the worker thread); raises ``Cancelled`` if cancelled."""
        if self._emit is not None:
            self._emit(JobEvent("progress", self, payload=payload))
        self.check()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job's cancel event is set."""
        if self.cancel.is_set():
            raise Cancelled(f"{self.kind} cancelled")


@dataclass
class JobEvent:
    """What happened to a job. ``payload`` is progress data, ``result`` the return value."""

    event: EventKind
    job: Job
    payload: Any = None
    result: Any = None
    error_kind: ErrorKind | None = None
    message: str = ""  #: one line for a notification (failed events)
    seconds: float = 0.0  #: wall time of the job (finished/failed events)

    @property
    def cancelled(self) -> bool:
        """A failed event of a job that was cancelled (not an error to report)."""
        return self.error_kind == "cancelled"


def describe_error(exc: BaseException, log_file: Path | None = None) -> tuple[ErrorKind, str]:
    """Classify an exception from a job and write the one line a person sees."""
    if isinstance(exc, Cancelled):
        return "cancelled", "Cancelled."
    if isinstance(exc, UserError):
        return "user", str(exc)
    torch = sys.modules.get("torch")
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None) if torch else None
    if (oom_type is not None and isinstance(exc, oom_type)) or type(exc).__name__ == "OutOfMemoryError":
        return "oom", (
            "Out of GPU memory: use fewer scales, a smaller size or fewer images, "
            "or free memory held by other processes (nvidia-smi), then try again."
        )

    return "internal", message(exc, log_file)


def lower_thread_priority(nice: int) -> bool:
    """Raise the calling thread's nice value (Linux: per thread; threads it starts inherit it).

    On a busy CPU the UI thread then wins the scheduler over the model work and torch's own
    worker threads (created later by this thread), so the interface stays responsive.
    Returns whether it worked (other systems, or no permission: nothing changes).
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        return True
    except OSError:
        return False


class JobRunner:
    """A daemon thread running jobs one at a time from a FIFO queue.

    ``on_event`` is called on the worker thread for every :class:`JobEvent`; it must be cheap and
    thread-safe (the TUI posts a message). ``resources`` is a dict only jobs touch (models, data),
    so everything that owns device memory lives on one thread.
    """

    def __init__(
        self,
        on_event: Callable[[JobEvent], None],
        *,
        name: str = "sd-explorer-worker",
        log_file: Path | None = None,
        nice: int = 0,
        between_jobs: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.on_event = on_event
        #: called with ``resources`` on the worker before each job (e.g. swap in a finished background compile)
        self.between_jobs = between_jobs
        self.log_file = log_file
        self.nice = nice
        self.resources: dict[str, Any] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._pending: list[Job] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- the UI side -------------------------------------------------------------------------
    def submit(self, kind: str, fn: Callable[[Job], Any], *, context: Any = None) -> Job:
        """Queue ``fn`` to run on the worker thread; returns the job (its ``cancel`` is live)."""
        if self._stopped:
            raise RuntimeError("the worker has been shut down")
        job = Job(kind=kind, fn=fn, id=next(self._ids), context=context, resources=self.resources)
        job._emit = self._emit
        with self._lock:
            self._pending.append(job)
        self._queue.put(job)
        return job

    def cancel(self, kind: str | None = None) -> int:
        """Cancel the running and queued jobs (of ``kind``, or all); returns how many were asked.

        A running job stops at its next check. A queued one leaves the queue now and its ``failed``
        (cancelled) event is emitted at once, on the calling thread: a pane waiting behind a long job
        (a training run) hears that its job is gone without waiting for that job to end."""
        with self._lock:
            current = self._current if self._current is not None and (kind is None or self._current.kind == kind) else None
            dropped = [j for j in self._pending if kind is None or j.kind == kind]
            self._pending = [j for j in self._pending if j not in dropped]
        for job in [current, *dropped]:
            if job is not None:
                job.cancel.set()
        for job in dropped:  # the worker skips them when it reaches them in the queue
            self._emit(JobEvent("failed", job, error_kind="cancelled", message="Cancelled."))
        return len(dropped) + (current is not None)

    def ahead(self) -> list[Job]:
        """The job running now and those waiting, in order: what a job submitted now waits for."""
        with self._lock:
            return [j for j in [self._current, *self._pending] if j is not None]

    def busy(self, kind: str | None = None) -> bool:
        """Whether a job (of ``kind``) is running or waiting."""
        with self._lock:
            jobs = [j for j in [self._current, *self._pending] if j is not None]
        return any(kind is None or j.kind == kind for j in jobs)

    def idle(self) -> bool:
        return not self.busy()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no job runs or waits (for tests and headless screenshots)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.01)
        return self.idle()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel everything, stop the thread after the current job, and wait for it."""
        self._stopped = True
        self.cancel()
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the worker side ---------------------------------------------------------------------
    def _emit(self, event: JobEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # a broken listener must not kill the worker
            log.exception("on_event failed for %s", event.event)

    def _run(self) -> None:
        if self.nice:
            lower_thread_priority(self.nice)
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job not in self._pending:  # cancelled while queued: its event has been sent
                    continue
                self._pending.remove(job)
                self._current = job
            try:
                self._run_one(job)
            finally:
                with self._lock:
                    self._current = None

    def _run_one(self, job: Job) -> None:
        if self.between_jobs is not None:
            try:
                self.between_jobs(self.resources)
            except Exception:  # noqa: BLE001 - a failed swap keeps the engine that runs now
                log.exception("between_jobs failed before job %s", job.id)
        start = time.perf_counter()
        try:
            job.check()  # cancelled while queued
            self._emit(JobEvent("started", job))
            result = job.fn(job)
        except BaseException as exc:  # noqa: BLE001 - the thread must survive every job
            kind, message = describe_error(exc, self.log_file)
            if kind == "internal" and not self._log_traceback(job, exc):
                kind, message = describe_error(exc, None)
            _release(exc, collect=kind == "oom")
            self._emit(
                JobEvent("failed", job, error_kind=kind, message=message,
                         seconds=time.perf_counter() - start)
            )
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return
        self._emit(JobEvent("finished", job, result=result, seconds=time.perf_counter() - start))

    def _log_traceback(self, job: Job, exc: BaseException) -> bool:
        """The traceback to the log file (``core.crash.record``); False if there is none or it cannot be written."""
        if self.log_file is None:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            log.error("job %s (%s) failed:\n%s", job.id, job.kind, text)
            return False

        return record(exc, self.log_file, f"job {job.id} ({job.kind})") is not None


def _release(exc: BaseException | None, collect: bool) -> None:
    """Free what a failed job's frames still hold (after an out-of-memory: its half-built batch, and caches).

    The traceback keeps every frame of the job alive, and with them their tensors; a frame in a
    reference cycle (an exception chained through ``raise ... from``) outlives the ``except``
    block until the next full collection, which the app defers (``tui/gc_tuning.py``). Clearing the
    frames' locals and collecting once gives the memory back before the next job starts."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)  # skips the frames still running (this one)
        exc = exc.__cause__ or exc.__context__
    if collect:  # an out-of-memory: give back all the memory we can before the next job
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            # cuBLAS keeps a workspace per thread and stream (32 MiB on Hopper) inside PyTorch's
            # allocator: the worker's own was what stayed allocated after an OOM (measured on an
            # H200: +33 MiB, no tensor alive). It is re-made on the next matrix product.
            clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
            if clear is not None:
                clear()
            torch.cuda.empty_cache()
