"""Capturing a CUDA graph, the one way: warm up on a side stream, capture over static tensors, replay.

A CUDA graph records one call's kernels once and replays them with a single launch; it reads and
writes the same memory every time, so its inputs and outputs are *static* tensors: a caller copies
new values into the static inputs before each replay and reads the static outputs after it (the next
replay overwrites them). PyTorch's recipe, which every capture here follows:

    warm_up(fn, times=2)                     # allocations and kernel choices, on a side stream
    graph = capture(fn, static_inputs(x))    # record fn(*inputs) once
    out = graph.replay(new_x)                # copy new_x in, replay, the static outputs come back

A capture that fails part-way (an op that syncs or allocates on the host) leaves the CUDA random
generators marked as capturing; ``capture`` heals them (``heal_rng_after_failed_capture``) before the
error goes on, so the caller can fall back to eager calls. Used by ``core.fashion.sampler`` (the
whole sampling step), ``core.fashion.graphstep`` (the whole training step) and ``core.graph_cache``
(one graph per call signature: the engine's UNet under ``core.fast``, and ``core.attention``'s recording one).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch


def heal_rng_after_failed_capture() -> None:
    """Leave every CUDA generator usable after a capture that failed part-way.

    A capture that is invalidated (an op that syncs or allocates on the host, say) makes
    ``cudaStreamEndCapture`` fail before PyTorch ends the capture for the generators the capture
    registered, so they stay marked as capturing and every later random op on them raises "Offset
    increment outside graph capture encountered unexpectedly" -- e.g. the weight initialisation of
    the next model a user loads. A clone of a generator's state is never capturing (same seed and
    offset): swapping it in is the whole repair.
    """
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    for gen in torch.cuda.default_generators:
        gen.graphsafe_set_state(gen.clone_state())


def static_inputs(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Copies of ``tensors`` to capture over (the graph reads them at every replay)."""
    return tuple(x.detach().clone() for x in tensors)


def warm_up(fn: Callable[[], Any], times: int = 1, stream: torch.cuda.Stream | None = None) -> Any:
    """Call ``fn()`` ``times`` times on a side stream (``stream``, or a new one) and return the last result:
    the allocations and kernel choices a capture then records, kept off the default stream as PyTorch asks."""
    side = stream if stream is not None else torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    out = None
    with torch.cuda.stream(side):
        for _ in range(times):
            out = fn()
    torch.cuda.current_stream().wait_stream(side)
    return out


class CapturedGraph:
    """One recorded call: ``replay(*new_inputs)`` copies them into ``inputs`` (those not already them),
    replays, and returns ``outputs`` (static: the next replay overwrites them)."""

    def __init__(self, graph: torch.cuda.CUDAGraph, inputs: tuple, outputs: Any, capture_s: float) -> None:
        self.graph = graph
        self.inputs = inputs  #: the static input tensors the graph reads
        self.outputs = outputs  #: what the captured call returned: static tensors the graph writes
        self.capture_s = capture_s  #: seconds the recording took
        self.replays = 0

    def replay(self, *new_inputs: Any) -> Any:
        for buffer, x in zip(self.inputs, new_inputs):
            if isinstance(x, torch.Tensor) and buffer is not x:
                buffer.copy_(x)
        self.graph.replay()
        self.replays += 1
        return self.outputs


def capture(fn: Callable[..., Any], inputs: tuple = (), *, pool: Any = None,
            error_mode: str = "global") -> CapturedGraph:
    """Record ``fn(*inputs)`` as a CUDA graph (``inputs``: static tensors, e.g. ``static_inputs(...)``).

    ``pool``: a memory pool shared with other graphs (``torch.cuda.graph_pool_handle()``);
    ``error_mode``: ``torch.cuda.graph``'s ``capture_error_mode`` ("global", "thread_local", "relaxed").
    Warm ``fn`` up first (``warm_up``). On failure the CUDA generators are healed and the error re-raised.
    """
    graph = torch.cuda.CUDAGraph()
    t0 = time.perf_counter()
    try:
        with torch.cuda.graph(graph, pool=pool, capture_error_mode=error_mode):
            outputs = fn(*inputs)
    except Exception:
        heal_rng_after_failed_capture()
        raise
    return CapturedGraph(graph, tuple(inputs), outputs, time.perf_counter() - t0)
