"""The app's side of the model-owning worker thread (``core.jobs.JobRunner``).

The runner calls :meth:`ModelWorker._on_event` on the worker thread; it posts a
:class:`~tui.messages.JobUpdate` (one class per event) to the widget that submitted the job (or the app). Posting is
thread-safe and never blocks the worker (``call_from_thread`` would, once per step).
"""

from __future__ import annotations

from typing import Any, Callable
import gc

from textual.app import App
from textual.message_pump import MessagePump

from ..core.jobs import Job, JobEvent, JobRunner
from .config import Settings
from .job_kinds import JobKind
from .job_results import ModelLoaded
from .messages import EngineStatus, job_message
from ..core.errors import UserError


class ModelWorker:
    """Submit model work from the UI; events come back as ``JobUpdate`` messages."""

    def __init__(self, app: App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # nice 5: on a busy CPU the UI thread preempts the model work (and torch's threads)
        self.runner = JobRunner(self._on_event, log_file=settings.log_path(), nice=5, between_jobs=swap_in_compiled)

    def _on_event(self, event: JobEvent) -> None:
        target = event.job.context if isinstance(event.job.context, MessagePump) else self.app
        target.post_message(job_message(event))

    def submit(self, kind: JobKind | str, fn: Callable[[Job], Any], target: MessagePump | None = None) -> Job:
        """Queue ``fn(job)`` on the worker; ``target`` receives its ``JobUpdate`` messages. ``kind`` is one of
        :class:`JobKind` (its value is taken too); the job's ``kind`` is then that ``JobKind``."""
        return self.runner.submit(JobKind(kind), fn, context=target)

    def cancel(self, kind: JobKind | None = None) -> int:
        """Cancel the running and queued jobs of ``kind`` (or all); returns how many were asked."""
        return self.runner.cancel(kind)

    def busy(self, kind: JobKind | None = None) -> bool:
        """Whether a job of ``kind`` (or any) runs or waits."""
        return self.runner.busy(kind)

    def submit_load(self, target: MessagePump | None = None) -> Job:
        """Load the configured model (and refiner) on the worker (``resources['model']``, ``['refiner']``);
        the job's result is a :class:`ModelLoaded`, so the UI never reads the worker's resources."""
        s = self.settings

        def load(job: Job):
            from ..core.models import load_model

            quiet_libraries()
            job.resources.pop("model", None)
            status = lambda text: self.app.post_message(EngineStatus(text))  # noqa: E731
            job.resources.pop("refiner", None)
            compile = s.compile or "default"  # compiled in the background on CUDA unless "off"
            model = load_model(s.model, device=s.device, dtype=s.dtype, vae=s.vae, compile=compile,
                               background_compile=True, status=status)
            job.resources["model"] = model
            if s.refiner:
                from ..core.refiner import check_base, check_pair

                check_base(model)
                refiner = load_model(s.refiner, device=s.device, dtype=s.dtype, vae=s.vae, compile=compile,
                                     background_compile=True, status=status)
                check_pair(model, refiner)
                job.resources["refiner"] = refiner

            gc.collect()  # the loaders' cyclic garbage (CPU copies of weights) goes now, before the app freezes the heap
            return ModelLoaded(model, job.resources.get("refiner"))

        return self.submit(JobKind.LOAD, load, target)

    def shutdown(self) -> None:
        self.runner.shutdown(timeout=2.0)


def swap_in_compiled(resources: dict) -> None:
    """Between jobs (``JobRunner``'s hook): the models' finished background compiles take over."""
    for name in ("model", "refiner"):
        model = resources.get(name)
        if model is not None:
            model.swap_in_compiled()


def quiet_libraries() -> None:
    """No progress bars or warnings from transformers/diffusers: they would draw over the screen."""
    import diffusers
    import transformers

    for lib in (diffusers, transformers):
        lib.utils.logging.set_verbosity_error()
        lib.utils.logging.disable_progress_bar()


def require_model(job: Job):
    """The loaded model, or a ``UserError`` saying how to get one."""
    model = job.resources.get("model")
    if model is None:
        raise UserError("No model is loaded (loading failed): fix --model and restart, or press ctrl+l to retry.")
    return model


def require_models(job: Job) -> ModelLoaded:
    """The loaded model (a ``UserError`` without one) and the SDXL refiner loaded beside it, or None.
    Every sampling job hands both to ``core.sampler.sample``."""
    return ModelLoaded(require_model(job), job.resources.get("refiner"))
