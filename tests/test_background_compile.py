"""Compiled by default, never a wait (issue 23): the swap-in mechanics on the CPU, with stand-ins.

The CUDA graphs are replaced by a stand-in that calls the function (no CUDA here), and the "compiled" UNet
is either a stand-in whose outputs say it ran, or torch.compile with the ``eager`` backend (Dynamo traces in
the compile thread, no C++ build). The GPU side (compiled = eager within fp16 rounding, the cache in a
second process) is tests/test_fast_gpu.py's and bench/bench_compile.py's.
"""

from __future__ import annotations

import threading

import pytest
import torch

from sd_explorer.core import background_compile, compile_cache, fast, graph_cache
from sd_explorer.core.background_compile import BackgroundCompiler, CompileState
from sd_explorer.core.jobs import JobRunner


class StubUNet(torch.nn.Module):
    """UNet2DConditionModel's call signature; ``x * w + mean(cond)``."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0), requires_grad=False)

    def forward(self, x, t, encoder_hidden_states=None, added_cond_kwargs=None, return_dict=False):
        return (x * self.w + encoder_hidden_states.mean(),)


class FakeGraphs:
    """Stands in for ``GraphedCallable`` on the CPU: calls ``fn``, counts signatures and calls."""

    def __init__(self, fn, name="UNet", status=None, warmup=2, setup=None):
        self.fn, self.name, self.status, self.calls, self.captures = fn, name, status, 0, []

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)

    def clear(self):
        pass


class Compiled:
    """A stand-in compiled module: the UNet's result + 1000 (so a test sees which engine ran), and the thread
    each call ran on; ``fail`` raises as a broken compiler would."""

    def __init__(self, unet, fail=False, gate=None):
        self.unet, self.fail, self.gate, self.threads = unet, fail, gate, []

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(30)
        if self.fail:
            raise RuntimeError("inductor: no C++ compiler\nmore lines")
        out = self.unet(*args, **kwargs)
        return (out[0] + 1000,)


def fast_unet(monkeypatch, *, fail=False, gate=None, real=False):
    monkeypatch.setattr(fast, "GraphedCallable", FakeGraphs)
    made = {}
    if real:
        monkeypatch.setattr(fast, "COMPILE_BACKEND", "eager")
    else:
        monkeypatch.setattr(fast, "compiled", lambda unet, mode: made.setdefault("c", Compiled(unet, fail, gate)))
    options = fast.FastOptions(graphs=True, channels_last=False, fuse_qkv=False, sdpa=False, compile="default",
                               compile_background=True, compile_regions=False)  # the stub has no blocks
    messages: list[str] = []
    unet = fast.FastUNet(StubUNet(), options, status=messages.append)
    return unet, made.get("c"), messages


def call(unet, rows=2):
    x = torch.ones(rows, 4, 8, 8)
    cond = torch.zeros(rows, 77, 16)
    return unet(x, 500, cond)


def test_first_calls_run_the_eager_graphs_and_the_compile_runs_in_its_own_thread(monkeypatch):
    gate = threading.Event()
    unet, stub, messages = fast_unet(monkeypatch, gate=gate)
    assert call(unet).max() == 2.0  # eager, at once: the compile is still waiting at the gate
    assert unet.engine.startswith("compiling 2x4x8x8")
    gate.set()
    assert unet.compiler.wait(30)
    assert stub.threads == ["compile UNet"]  # never on the caller's thread
    assert call(unet).max() == 2.0  # ready, but not swapped in: a job never changes engine half-way
    assert unet.engine == "graphs (compiled from the next job)"
    assert unet.swap_in() == ["2x4x8x8"]
    assert call(unet).max() == 1002.0 and unet.engine == "compiled"
    assert any(m.startswith("compiled 2x4x8x8 in") for m in messages)
    assert any(m.startswith("compiled UNet swapped in") for m in messages)
    assert call(unet, rows=8).max() == 2.0  # a new shape: eager graphs again, its own compile queued
    assert unet.compiler.wait(30) and unet.swap_in() == ["8x4x8x8"] and call(unet, rows=8).max() == 1002.0


def test_a_failed_compile_is_one_line_and_the_eager_graphs_go_on(monkeypatch):
    unet, _, messages = fast_unet(monkeypatch, fail=True)
    assert call(unet).max() == 2.0
    assert unet.compiler.wait(30)
    assert unet.swap_in() == [] and call(unet).max() == 2.0
    failed = [m for m in messages if m.startswith("torch.compile failed")]
    assert failed == ["torch.compile failed for 2x4x8x8 (inductor: no C++ compiler); the CUDA graphs of the eager "
                      "UNet go on"]
    assert unet.compiler.tasks and list(unet.compiler.tasks.values())[0].state is CompileState.FAILED


def test_recording_probes_never_replay_the_compiled_graphs(monkeypatch):
    unet, _, _ = fast_unet(monkeypatch)
    call(unet)
    assert unet.compiler.wait(30) and unet.swap_in()
    probes = FakeGraphs(unet.eager, "UNet + attention maps")
    with unet.eager_graphs(probes):
        assert call(unet).max() == 2.0 and probes.calls == 1
    assert call(unet).max() == 1002.0


def test_real_dynamo_in_the_compile_thread_gives_the_eager_result(monkeypatch):
    torch._dynamo.reset()
    unet, _, messages = fast_unet(monkeypatch, real=True)
    eager = call(unet)
    assert unet.compiler.wait(120), messages
    assert unet.swap_in() == ["2x4x8x8"], messages
    assert torch.equal(call(unet), eager)
    torch._dynamo.reset()


def test_the_runner_swaps_between_jobs_never_during_one():
    seen, order = [], []
    runner = JobRunner(lambda event: None, between_jobs=lambda resources: order.append("swap"))
    try:
        done = threading.Event()
        runner.submit("a", lambda job: order.append("job a"))
        runner.submit("b", lambda job: (order.append("job b"), done.set()))
        assert done.wait(30)
        assert runner.wait_idle(30)
    finally:
        runner.shutdown()
    assert order == ["swap", "job a", "swap", "job b"]
    assert seen == []


def test_a_failing_swap_hook_leaves_the_worker_running():
    def broken(resources):
        raise RuntimeError("boom")

    done = threading.Event()
    runner = JobRunner(lambda event: None, between_jobs=broken)
    try:
        runner.submit("a", lambda job: done.set())
        assert done.wait(30)
    finally:
        runner.shutdown()


def test_the_compile_cache_goes_to_the_users_cache_unless_set(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.INDUCTOR_VAR, raising=False)
    monkeypatch.delenv(compile_cache.TRITON_VAR, raising=False)
    monkeypatch.setenv(compile_cache.OVERRIDE_VAR, str(tmp_path / "cc"))
    choice = compile_cache.use()
    assert choice.folder == tmp_path / "cc" and (tmp_path / "cc" / "triton").is_dir()
    import os

    assert os.environ[compile_cache.INDUCTOR_VAR] == str(tmp_path / "cc")
    assert os.environ[compile_cache.TRITON_VAR] == str(tmp_path / "cc" / "triton")
    monkeypatch.setenv(compile_cache.INDUCTOR_VAR, "/elsewhere")  # the user's own setting wins
    assert compile_cache.use().folder.as_posix() == "/elsewhere"


def test_an_unwritable_cache_is_named_and_compiling_goes_on(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.INDUCTOR_VAR, raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    choice = compile_cache.use(blocker / "cc")  # a parent that is a file
    assert choice.folder is None
    assert "is not writable" in choice.note and compile_cache.OVERRIDE_VAR in choice.note
    assert compile_cache.INDUCTOR_VAR not in __import__("os").environ


def test_compile_off_and_modes_are_checked_once():
    from sd_explorer.core.errors import UserError
    from sd_explorer.core.inputs import check_compile_mode

    assert check_compile_mode("off") == "" and check_compile_mode(None) == "" and check_compile_mode("default") == "default"
    with pytest.raises(UserError, match="off, default, max-autotune-no-cudagraphs"):
        check_compile_mode("fast")


def test_background_compiler_summary_names_what_runs():
    gate = threading.Event()
    compiler = BackgroundCompiler(lambda *a: gate.wait(30), name="UNet")
    assert compiler.summary() == "graphs"
    compiler.request("k1", "2x4x64x64", lambda: ((), {}, None))
    compiler.request("k2", "8x4x64x64", lambda: ((), {}, None))
    assert compiler.request("k1", "2x4x64x64", lambda: ((), {}, None)) is False  # once per signature
    assert compiler.summary() == "compiling 2x4x64x64… (+1)"
    gate.set()
    assert compiler.wait(30)
    assert compiler.summary() == "compiled" and background_compile.CompileState.READY is compiler.state("k2")


def test_inductors_own_default_in_the_variable_is_not_the_users_choice(monkeypatch, tmp_path):
    monkeypatch.setenv(compile_cache.INDUCTOR_VAR, compile_cache.torch_default())  # what Inductor writes itself
    monkeypatch.delenv(compile_cache.TRITON_VAR, raising=False)
    monkeypatch.setenv(compile_cache.OVERRIDE_VAR, str(tmp_path / "cc"))
    assert compile_cache.use().folder == tmp_path / "cc"


def test_a_capture_never_waits_for_a_compile_on_the_device(monkeypatch):
    """While a compile thread holds the device, a new signature's capture runs that call eagerly (and captures
    later) instead of waiting or failing: on the H200 the two at once broke both."""
    monkeypatch.setattr(torch.cuda, "graph", None)  # a capture attempt on the CPU would fail loudly
    graphs = graph_cache.GraphedCallable(lambda x: x * 2, "UNet")
    with background_compile.DEVICE_WORK:
        assert torch.equal(graphs(torch.ones(2)), torch.full((2,), 2.0))
    assert graphs.deferred == 1 and not graphs.graphs and not graphs.eager  # nothing given up on
