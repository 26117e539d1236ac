"""The UI-free worker: one thread, a FIFO queue, per-job cancel, errors that never kill it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from sd_explorer.core.errors import UserError
from sd_explorer.core.jobs import Job, JobEvent, JobRunner, describe_error


class Recorder:
    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.threads: set[str] = set()
        self.done = threading.Event()

    def __call__(self, event: JobEvent) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread().name)

    def kinds(self, job_id: int) -> list[str]:
        return [e.event for e in self.events if e.job.id == job_id]


@pytest.fixture
def runner():
    rec = Recorder()
    r = JobRunner(rec, name="test-worker")
    r.rec = rec
    yield r
    r.shutdown()


def test_jobs_run_in_order_on_one_thread(runner):
    seen = []
    jobs = [runner.submit("x", lambda job, i=i: seen.append((i, threading.current_thread().name)) or i)
            for i in range(5)]
    assert runner.wait_idle(5)
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert {name for _, name in seen} == {"test-worker"}
    assert runner.rec.threads == {"test-worker"}
    finished = [e for e in runner.rec.events if e.event == "finished"]
    assert [e.result for e in finished] == [0, 1, 2, 3, 4]
    assert runner.rec.kinds(jobs[0].id) == ["started", "finished"]


def test_progress_events_and_resources_shared(runner):
    def work(job):
        job.resources["model"] = "loaded"
        for i in range(3):
            job.progress(i)
        return "ok"

    job = runner.submit("p", work)
    runner.submit("q", lambda j: j.resources["model"])
    assert runner.wait_idle(5)
    assert [e.payload for e in runner.rec.events if e.event == "progress"] == [0, 1, 2]
    results = [e.result for e in runner.rec.events if e.event == "finished"]
    assert results == ["ok", "loaded"]
    assert runner.rec.kinds(job.id) == ["started", "progress", "progress", "progress", "finished"]


def test_cancel_mid_job_keeps_thread_alive(runner):
    started = threading.Event()

    def slow(job):
        started.set()
        for i in range(1000):
            time.sleep(0.005)
            job.progress(i)
        return "never"

    job = runner.submit("sweep", slow)
    assert started.wait(5)
    assert runner.cancel("sweep") == 1
    assert runner.wait_idle(5)
    failed = [e for e in runner.rec.events if e.job is job and e.event == "failed"]
    assert failed and failed[0].error_kind == "cancelled"
    after = runner.submit("x", lambda j: 42)
    assert runner.wait_idle(5)
    assert runner.alive
    assert runner.rec.kinds(after.id) == ["started", "finished"]


def test_cancel_only_matching_kind_and_queued_jobs(runner):
    gate = threading.Event()
    first = runner.submit("train", lambda j: gate.wait(5) and "trained")
    queued = runner.submit("sweep", lambda j: "swept")
    assert runner.busy("sweep")
    runner.cancel("sweep")
    gate.set()
    assert runner.wait_idle(5)
    assert runner.rec.kinds(first.id) == ["started", "finished"]
    # a job cancelled while waiting never starts
    assert runner.rec.kinds(queued.id) == ["failed"]


def test_errors_become_one_line_and_worker_survives(tmp_path):
    rec = Recorder()
    log_file = tmp_path / "worker.log"
    runner = JobRunner(rec, log_file=log_file)
    try:
        def bad_input(job):
            raise UserError("No such image: x.png; pass an existing PNG or JPEG.")

        def bug(job):
            raise ZeroDivisionError("boom")

        a = runner.submit("latents", bad_input)
        b = runner.submit("sweep", bug)
        c = runner.submit("x", lambda j: "fine")
        assert runner.wait_idle(5)
        by_id = {e.job.id: e for e in rec.events if e.event in ("failed", "finished")}
        assert by_id[a.id].error_kind == "user"
        assert by_id[a.id].message == "No such image: x.png; pass an existing PNG or JPEG."
        assert by_id[b.id].error_kind == "internal"
        assert "ZeroDivisionError: boom" in by_id[b.id].message and str(log_file) in by_id[b.id].message
        assert "ZeroDivisionError" in log_file.read_text()
        assert by_id[c.id].result == "fine"
    finally:
        runner.shutdown()


def test_out_of_memory_suggests_a_fix():
    class OutOfMemoryError(RuntimeError):
        pass

    kind, text = describe_error(OutOfMemoryError("CUDA out of memory"))
    assert kind == "oom" and "smaller size" in text


def test_listener_errors_do_not_kill_worker():
    calls = []

    def flaky(event):
        calls.append(event.event)
        raise RuntimeError("listener bug")

    runner = JobRunner(flaky)
    try:
        runner.submit("x", lambda j: 1)
        runner.submit("x", lambda j: 2)
        assert runner.wait_idle(5)
        assert calls == ["started", "finished", "started", "finished"]
    finally:
        runner.shutdown()


def test_shutdown_stops_thread():
    runner = JobRunner(lambda e: None)
    runner.shutdown()
    assert not runner.alive
    with pytest.raises(RuntimeError):
        runner.submit("x", lambda j: 1)


def test_jobs_module_imports_no_ui():
    code = "import sys, sd_explorer.core.jobs; bad=[m for m in ('textual','rich','sd_explorer.tui','torch') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_worker_thread_can_run_at_lower_priority():
    import os

    runner = JobRunner(lambda e: None, nice=3)
    try:
        job_results = []
        runner.on_event = lambda e: job_results.append(e.result) if e.event == "finished" else None
        runner.submit("x", lambda j: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert runner.wait_idle(5)
        main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert job_results == [min(19, main + 3)]
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main  # the UI thread is untouched
    finally:
        runner.shutdown()


def test_a_failed_job_lets_go_of_its_tensors():
    """An out-of-memory mid-sweep must not keep the half-built batch alive (GPU: 33 MB stayed allocated).

    The failing frame sits in a reference cycle (an exception chained with ``raise ... from``), which
    only a full collection frees; the runner clears the failed job's frames and collects."""
    import gc
    import weakref

    import torch

    held = []
    events = []
    runner = JobRunner(events.append)

    def job_fn(job):
        batch = torch.zeros(1024)
        held.append(weakref.ref(batch))
        try:
            raise ValueError("inner")
        except ValueError as inner:
            err = torch.cuda.OutOfMemoryError("CUDA out of memory")
            err.frame_ref = inner  # a cycle through the frames' exceptions
            raise err from inner

    gc.disable()  # as the app's raised thresholds do: only an explicit collection runs
    try:
        runner.submit("sweep", job_fn)
        assert runner.wait_idle(10)
        assert [e.event for e in events][-1] == "failed" and events[-1].error_kind == "oom"
        assert held[0]() is None, "the failed job's tensor is still referenced"
    finally:
        gc.enable()
        runner.shutdown()


def test_fp32_on_cuda_turns_tf32_convolutions_off_only_while_sampling():
    """cuDNN's TF32 would make a fp32 GPU image differ from the CPU's for the same seed."""
    from types import SimpleNamespace

    import torch

    from sd_explorer.core.fast import ieee_fp32

    seen = []
    probe = ieee_fp32(lambda model: seen.append(torch.backends.cudnn.allow_tf32))
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        probe(SimpleNamespace(device=torch.device("cuda"), dtype=torch.float32))
        probe(SimpleNamespace(device=torch.device("cuda"), dtype=torch.float16))
        probe(SimpleNamespace(device=torch.device("cpu"), dtype=torch.float32))
        assert seen == [False, True, True]
        assert torch.backends.cudnn.allow_tf32 is True
    finally:
        torch.backends.cudnn.allow_tf32 = before


def test_a_failed_event_says_whether_it_was_a_cancellation():
    job = Job(kind="sweep", fn=lambda j: None)
    assert JobEvent("failed", job, error_kind="cancelled").cancelled
    assert not JobEvent("failed", job, error_kind="user").cancelled and not JobEvent("finished", job).cancelled


def test_a_queued_job_cancelled_leaves_the_queue_and_says_so_at_once(runner):
    """Issue 27, item 4: a sweep queued behind a training run and cancelled must not stay "cancelling…"
    until the training ends: its cancelled event comes now, the job never runs, and the queue moves on."""
    release, ran = threading.Event(), []
    long = runner.submit("train", lambda job: release.wait(60) and "trained")
    queued = runner.submit("sweep", lambda job: ran.append("sweep"))
    after = runner.submit("other", lambda job: "after")
    assert runner.cancel("sweep") == 1
    assert runner.rec.kinds(queued.id) == ["failed"]  # already, while the long job still runs
    failed = [e for e in runner.rec.events if e.job.id == queued.id][0]
    assert failed.cancelled and failed.message == "Cancelled."
    assert not runner.busy("sweep") and runner.busy("train")
    release.set()
    assert runner.wait_idle(60)
    assert ran == [] and runner.rec.kinds(queued.id) == ["failed"]
    assert runner.rec.kinds(long.id) == ["started", "finished"] and runner.rec.kinds(after.id) == ["started", "finished"]
