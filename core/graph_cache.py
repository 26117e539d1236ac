"""A callable replayed from CUDA graphs, one graph per call signature (``GraphedCallable``).

``signature(args, kwargs)`` says what a graph is captured for: the nesting of the arguments plus every
tensor's shape, dtype and device and every other value; ``rebuild`` puts a call's (or a graph's static)
leaves back into that nesting. ``GraphedCallable`` is generic (tensors anywhere in positional or keyword
arguments, nested in tuples, lists or dicts): ``core.fast`` wraps the engine's UNet call with it,
``core.attention`` a recording one, and the SDXL bench ``pipe.unet.forward`` of a diffusers pipeline.
One capture of one function is ``core.cuda_graphs.capture``'s job; this module keeps many, by signature.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import torch

from .background_compile import DEVICE_WORK
from .cuda_graphs import CapturedGraph, capture, warm_up

Status = Callable[[str], None]


@dataclass
class Capture:
    """One captured graph: what it was captured for and what it cost."""

    signature: str
    warmup_s: float  #: eager warm-up runs before capture (cuDNN/cuBLAS setup, lazy init)
    capture_s: float  #: recording the graph


# ---------------------------------------------------------------- a call's signature
def signature(args: tuple, kwargs: dict) -> tuple[Any, Any, list]:
    """What a graph is captured for: ``(key, spec, leaves)``. ``leaves`` are the call's tensors and other
    values, in order (nested in tuples, lists or dicts); ``spec`` the structure around them
    (``rebuild`` puts leaves back in); ``key`` the structure plus, per leaf, its shape, dtype and device
    (a tensor) or its value. Calls with equal keys replay one graph with their own tensor values."""
    leaves: list = []
    spec = _flatten((args, kwargs), leaves)
    return (_spec_key(spec), tuple(_leaf_key(x) for x in leaves)), spec, leaves


def rebuild(spec: Any, leaves: list) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of a ``signature``'s call with ``leaves`` in place (its own, or a graph's
    static buffers)."""
    return _rebuild(spec, leaves)


def _flatten(obj: Any, leaves: list) -> Any:
    """Replace every tensor/scalar leaf by its index in ``leaves``; return the structure."""
    if isinstance(obj, (tuple, list)):
        return (type(obj), [_flatten(x, leaves) for x in obj])
    if isinstance(obj, dict):
        return (dict, [(k, _flatten(v, leaves)) for k, v in obj.items()])
    leaves.append(obj)
    return len(leaves) - 1


def _rebuild(spec: Any, leaves: list) -> Any:
    if isinstance(spec, int):
        return leaves[spec]
    kind, items = spec
    if kind is dict:
        return {k: _rebuild(v, leaves) for k, v in items}
    return kind(_rebuild(x, leaves) for x in items)


def _spec_key(spec: Any) -> Any:
    if isinstance(spec, int):
        return spec
    kind, items = spec
    if kind is dict:
        return ("dict", tuple((k, _spec_key(v)) for k, v in items))
    return (kind.__name__, tuple(_spec_key(x) for x in items))


def _leaf_key(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return ("tensor", tuple(x.shape), x.dtype, str(x.device))
    try:
        hash(x)
        return ("value", x)
    except TypeError:
        return ("repr", repr(x))


def _clone_out(out: Any) -> Any:
    """Copies of the graph's static outputs (the next replay overwrites them; PNDM keeps history)."""
    if isinstance(out, torch.Tensor):
        return out.clone(memory_format=torch.contiguous_format)
    if isinstance(out, (tuple, list)):
        return type(out)(_clone_out(x) for x in out)
    if isinstance(out, dict):
        return type(out)(**{k: _clone_out(v) for k, v in out.items()})
    return out


class GraphedCallable:
    """``fn(*args, **kwargs)`` replayed from one CUDA graph per call signature.

    A signature is the nesting of the arguments plus every tensor's shape, dtype and device and
    every non-tensor value; a new signature captures a new graph (all share one memory pool).
    Tensor arguments are copied into static buffers before each replay; outputs are cloned.
    If a capture fails, that signature runs eagerly from then on (and ``status`` says why).
    ``setup()`` (a context manager) wraps warm-up and capture, e.g. ``cudnn_benchmark``: what it
    chooses there is baked into the graph.
    """

    def __init__(self, fn: Callable, name: str = "UNet", status: Status | None = None, warmup: int = 2,
                 setup: Callable[[], ContextManager] | None = None):
        self.fn, self.name, self.status, self.warmup = fn, name, status, warmup
        self.setup = setup or contextlib.nullcontext
        self.graphs: dict[Any, CapturedGraph] = {}  #: signature key -> its graph
        self.eager: dict[Any, str] = {}  #: signatures whose capture failed -> why
        self.captures: list[Capture] = []
        self.replays = 0
        self.deferred = 0  #: calls run eagerly because a background compile held the device
        self._pool = None

    def _say(self, text: str) -> None:
        if self.status is not None:
            self.status(text)

    def clear(self) -> None:
        """Drop every graph (and, once unreferenced, their memory)."""
        self.graphs.clear()
        self.eager.clear()
        self._pool = None

    @torch.no_grad()
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key, spec, leaves = signature(args, kwargs)
        if key in self.eager:
            call_args, call_kwargs = rebuild(spec, leaves)
            return self.fn(*call_args, **call_kwargs)
        entry = self.graphs.get(key)
        if entry is None:
            if not DEVICE_WORK.acquire(blocking=False):  # a compile is running on the device: capture later
                self.deferred += 1
                call_args, call_kwargs = rebuild(spec, leaves)
                return self.fn(*call_args, **call_kwargs)
            try:
                entry = self._capture(key, spec, leaves)
            finally:
                DEVICE_WORK.release()
            if entry is None:
                call_args, call_kwargs = rebuild(spec, leaves)
                return self.fn(*call_args, **call_kwargs)
        out = entry.replay(*leaves)
        self.replays += 1  # all signatures together: core.attention counts its recorded calls by them
        return _clone_out(out)

    def _capture(self, key: Any, spec: Any, leaves: list):
        shapes = ", ".join("x".join(map(str, x.shape)) for x in leaves if isinstance(x, torch.Tensor) and x.dim())
        label = f"{self.name} [{shapes}]"
        self._say(f"capturing CUDA graph for {label}…")
        static = [x.detach().clone() if isinstance(x, torch.Tensor) else x for x in leaves]
        try:
            with self.setup():
                return self._record(key, label, spec, static)
        except Exception as exc:  # an op that cannot be captured: run this signature eagerly
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]  # capture healed the RNG
            self.eager[key] = reason
            self._say(f"CUDA graph capture failed for {label} ({reason}); running it eagerly")
            return None

    def _record(self, key: Any, label: str, spec: Any, static: list) -> CapturedGraph:
        """Warm up and capture this signature (``core.cuda_graphs``' recipe) over its ``static`` leaves."""

        def call(*leaves: Any) -> Any:
            call_args, call_kwargs = rebuild(spec, list(leaves))
            return self.fn(*call_args, **call_kwargs)

        t0 = time.perf_counter()
        warm_up(lambda: call(*static), times=self.warmup)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = capture(call, tuple(static), pool=self._pool, error_mode="thread_local")
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        self.graphs[key] = graph
        self.captures.append(Capture(label, t1 - t0, t2 - t1))
        self._say(f"captured CUDA graph for {label} in {t2 - t0:.2f} s")
        return graph
