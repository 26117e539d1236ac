"""torch.compile in the background: the first image never waits for the compiler.

On CUDA the UNet first runs from CUDA graphs of the eager module (a capture costs seconds). Each new
call signature (batch rows, latent size, dtypes) is also handed to a :class:`BackgroundCompiler`,
whose daemon thread runs the compiled module once on copies of that call's inputs, on a CUDA stream
of its own: Dynamo traces, Inductor generates and autotunes kernels (about a minute per shape for
SD 1.5 on an H200, seconds when ``core.compile_cache`` finds them on disk), while the worker keeps
sampling from the eager graphs. A signature whose compile finished is *ready*; its owner
(``core.fast.FastUNet``) swaps it in between jobs (``swap_in``), never during one, so a job's images all
come from one engine. A failed compile is one line through ``status`` and that signature keeps its
eager graph: never a crash.

States per signature: ``queued -> compiling -> ready | failed``; :meth:`BackgroundCompiler.summary`
names them for a status line (``compiling 2x4x64x64…``).
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

Status = Callable[[str], None]

#: held while a thread records a CUDA graph or a compile thread runs device work: a capture fails if another
#: thread's compiler synchronises or benchmarks meanwhile (seen on the H200: "operation not permitted when
#: stream is capturing", both the compile and the capture lost). The compile thread waits for it; a capture
#: that finds it taken runs that one call eagerly instead of waiting (``core.graph_cache.GraphedCallable``).
DEVICE_WORK = threading.Lock()


class CompileState(enum.Enum):
    QUEUED = "queued"
    COMPILING = "compiling"
    READY = "ready"
    FAILED = "failed"


@dataclass
class CompileTask:
    """One signature's compile: what it is for, how it went."""

    key: Any
    label: str  #: the shapes, e.g. ``2x4x64x64``
    state: CompileState = CompileState.QUEUED
    seconds: float = 0.0
    reason: str = ""  #: why it failed


class BackgroundCompiler:
    """Compile ``fn`` for call signatures on a daemon thread.

    ``fn(*args, **kwargs)`` is the compiled callable (``torch.compile(module)``); calling it once with a
    signature's inputs is what compiles it. ``request(key, label, make_inputs)`` queues a signature:
    ``make_inputs()`` runs on the requesting thread and returns ``(args, kwargs)`` copies the compile
    thread may use freely (and an event it waits for, or None). ``ready()`` lists the finished ones.
    ``device_stream`` makes the stream the compile runs on (None: the current one, e.g. on a CPU).
    """

    def __init__(self, fn: Callable, *, name: str = "UNet", status: Status | None = None,
                 device_stream: Callable[[], Any] | None = None, grad: bool = False):
        self.fn, self.name, self.status = fn, name, status
        self.device_stream, self.grad = device_stream, grad
        self.tasks: dict[Any, CompileTask] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pending = 0  #: queued or compiling; the thread ends when it reaches 0 (under the lock)
        self._idle = threading.Event()
        self._idle.set()

    # -- the worker's side -------------------------------------------------------------------
    def request(self, key: Any, label: str, make_inputs: Callable[[], tuple[tuple, dict, Any]]) -> bool:
        """Queue ``key`` unless it is known already; returns whether it was queued."""
        with self._lock:
            if key in self.tasks:
                return False
            task = self.tasks[key] = CompileTask(key, label)
        args, kwargs, ready_event = make_inputs()
        with self._lock:
            self._pending += 1
            self._idle.clear()
            self._queue.put((task, args, kwargs, ready_event))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"compile {self.name}", daemon=True)
                self._thread.start()
        return True

    def ready(self) -> list[CompileTask]:
        with self._lock:
            return [t for t in self.tasks.values() if t.state is CompileState.READY]

    def state(self, key: Any) -> CompileState | None:
        with self._lock:
            task = self.tasks.get(key)
            return task.state if task is not None else None

    def busy(self) -> bool:
        return not self._idle.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Until every queued compile has finished (tests, benchmarks); returns whether they did."""
        return self._idle.wait(timeout)

    def summary(self) -> str:
        """``compiling 2x4x64x64…`` / ``compiled`` / ``graphs`` (nothing compiled yet) for a status line."""
        with self._lock:
            tasks = list(self.tasks.values())
        running = [t.label for t in tasks if t.state in (CompileState.COMPILING, CompileState.QUEUED)]
        if running:
            return f"compiling {running[0]}…" + (f" (+{len(running) - 1})" if len(running) > 1 else "")
        return "compiled" if any(t.state is CompileState.READY for t in tasks) else "graphs"

    # -- the compile thread ------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.status is not None:
            try:
                self.status(text)
            except Exception:  # noqa: BLE001 - a broken listener must not stop the compiles
                pass

    def _run(self) -> None:
        import torch

        while True:
            with self._lock:
                if self._pending == 0:  # nothing left: end (a later request starts a new thread)
                    self._thread = None
                    self._idle.set()
                    return
            task, args, kwargs, ready_event = self._queue.get()
            with self._lock:
                task.state = CompileState.COMPILING
            self._say(f"compiling {task.label} ({self.name}, torch.compile) in the background…")
            t0 = time.perf_counter()
            try:
                stream = self.device_stream() if self.device_stream is not None else None
                with torch.set_grad_enabled(self.grad), (torch.cuda.stream(stream) if stream is not None
                                                         else _nothing()):
                    if ready_event is not None and stream is not None:
                        stream.wait_event(ready_event)
                    with DEVICE_WORK:
                        self.fn(*args, **kwargs)
                    if stream is not None:
                        stream.synchronize()
            except Exception as exc:  # noqa: BLE001 - any compiler failure: keep the eager graphs
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                with self._lock:
                    task.state, task.reason, task.seconds = CompileState.FAILED, reason, time.perf_counter() - t0
                self._say(f"torch.compile failed for {task.label} ({reason}); the CUDA graphs of the eager UNet go on")
            else:
                with self._lock:
                    task.state, task.seconds = CompileState.READY, time.perf_counter() - t0
                self._say(f"compiled {task.label} in {task.seconds:.0f} s (used from the next job)")
            finally:
                del args, kwargs
                with self._lock:
                    self._pending -= 1


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
