"""GPU fast paths for the UNet: CUDA graphs, SDPA attention, channels_last, fused QKV, cuDNN autotuning,
and (opt-in) torch.compile under the graphs.

Eager diffusers spends most of an SD 1.5 step launching ~1,500 small kernels from Python (the GPU
idles between them). A CUDA graph records one UNet call per input shape and replays it with one
launch. ``enable_fast_paths(model)`` installs such a graphed UNet on ``model.unet_forward`` (the
hook that ``LoadedModel.predict`` calls); ``disable_fast_paths(model)`` puts everything back.

Graphs are captured lazily, one per input ``signature`` (batch rows, latent size, dtypes), on first use;
``status(text)`` is told before and after ("capturing CUDA graph…", "… in 0.31 s") so a UI can show
the one-time cost. On a CPU or MPS device every fast path is a no-op and the eager UNet runs.

``compile`` (a ``torch.compile`` mode: "default", "max-autotune-no-cudagraphs") fuses the UNet's
small kernels with Inductor before the graph is captured; the compile happens in the capture's
warm-up (a minute or more per input shape, reported as warm-up time). Off by default until the
benchmark shows it pays (``bench/bench_sd.py`` times it beside the other variants).

The graph cache itself, ``GraphedCallable`` (one graph per call signature), is ``core.graph_cache``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable
import functools

import torch

from .background_compile import BackgroundCompiler
from .compile_regions import Regions
from .graph_cache import Capture, GraphedCallable, Status, signature
from . import compile_cache
from .inputs import check_compile_mode

#: attention processors that already use torch's scaled_dot_product_attention
SDPA_PROCESSORS = ("AttnProcessor2_0", "FusedAttnProcessor2_0")
COMPILE_BACKEND = "inductor"  #: tests on the CPU swap in "eager" (tracing only, no C++ build)


@dataclass
class FastOptions:
    """Which fast paths are on. Defaults: what measured as a win on an H200 (docs/benchmarks.md)."""

    graphs: bool = True
    channels_last: bool = True  #: UNet weights NHWC: 10.2 vs 11.9 ms per batch-2 call
    fuse_qkv: bool = True
    sdpa: bool = True
    #: let cuDNN time its conv algorithms while the graph is captured: measured no faster on an H200
    #: (9.99 vs 10.00 ms at batch 2) and 2.5-3.5x eager fp16's error per call, so off by default
    cudnn_benchmark: bool = False
    vae_channels_last: bool = False  #: measured slower (26 vs 21 ms per 512x512 decode): off
    compile: str = ""  #: a torch.compile mode (core.inputs.COMPILE_MODES), or "" (off)
    #: compile in the background (core.background_compile) and swap in between jobs; else before the first capture
    compile_background: bool = False
    #: compile the repeated blocks only (core.compile_regions), else the whole UNet. Off: on the H200 (2026-12-02)
    #: transformer + ResNet blocks compiled in 55-68 s per shape (ResNet blocks have many shapes) and ran slower
    #: than the whole UNet compiled (0.427 vs 0.356 s for (a), 1.12 vs 1.00 s for (b)); docs/benchmarks.md
    compile_regions: bool = False

    def describe(self) -> str:
        on = [name if value is True else f"{name}={value}" for name, value in vars(self).items() if value]
        return ", ".join(on) if on else "none"


@contextlib.contextmanager
def cudnn_benchmark(on: bool = True):
    """cuDNN's autotuner on for the duration (and back to what it was after)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


# ---------------------------------------------------------------- fp32 means fp32
def ieee_fp32(fn):
    """Run ``fn(model, ...)`` with cuDNN's TF32 convolutions off when ``model`` is fp32 on CUDA.

    cuDNN rounds fp32 convolution inputs to TF32 (10-bit mantissa) by default; a few steps of a
    stochastic sampler amplify that, so an fp32 model on the GPU would not give the CPU's image for
    the same seed, which the README promises. fp16/bf16 models are unaffected (no TF32 there)."""
    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        device, dtype = _device_and_dtype(model)
        if getattr(device, "type", None) != "cuda" or dtype != torch.float32:
            return fn(model, *args, **kwargs)
        before = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            return fn(model, *args, **kwargs)
        finally:
            torch.backends.cudnn.allow_tf32 = before

    return wrapper


def _device_and_dtype(model) -> tuple[Any, Any]:
    """A model's device and dtype: its own attributes (engine models), else its (UNet's) first parameter."""
    if getattr(model, "device", None) is not None and getattr(model, "dtype", None) is not None:
        return model.device, model.dtype
    module = getattr(model, "unet", model)
    if isinstance(module, torch.nn.Module):
        param = next(module.parameters(), None)
        if param is not None:
            return param.device, param.dtype
    return None, None


# ---------------------------------------------------------------- the engine's UNet hook
class FastUNet:
    """``(latents, t, cond[, added]) -> prediction``, installed on ``LoadedModel.unet_forward``.

    ``t`` may be a device tensor, a CPU tensor or a number: it becomes a 0-d device tensor without a
    host-device sync (a CPU value is written by a fill kernel, never by a blocking copy).
    """

    def __init__(self, unet: torch.nn.Module, options: FastOptions, status: Status | None = None):
        self.unet, self.options = unet, options
        mode = options.compile
        background = bool(mode and options.graphs and options.compile_background)
        foreground = bool(mode) and not background
        #: what ``compiled_call`` runs: the UNet with its blocks compiled (core.compile_regions), or all of it
        self.regions = Regions(unet, lambda fn: compiled(fn, mode)) if mode and options.compile_regions else None
        self.compiled_module = compiled(unet, mode) if mode and self.regions is None else None
        self.setup = (lambda: cudnn_benchmark(True)) if options.cudnn_benchmark else contextlib.nullcontext
        label = f"UNet (torch.compile {mode}{', blocks' if self.regions is not None else ''})"
        first = self.compiled_call if foreground else self.eager
        self.graphed = (GraphedCallable(first, label if foreground else "UNet", status, setup=self.setup)
                        if options.graphs else None)
        #: background compiling: its own graphs of the compiled call, the compile thread, the signatures swapped in
        self.compiled_graphed = GraphedCallable(self.compiled_call, label, status, setup=self.setup) if background else None
        on_cuda = next(unet.parameters()).is_cuda
        self.compiler = (BackgroundCompiler(self.compiled_call, name="UNet", status=status,
                                            device_stream=torch.cuda.Stream if on_cuda else None) if background else None)
        self.compiled_keys: set = set()
        self._eager_only = 0  #: > 0 while probes record (core.attention): the eager module's graphs only

    def eager(self, latents: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
              added: dict | None = None) -> torch.Tensor:
        """The plain UNet call ``(latents, t, cond, added) -> prediction`` (what probes must run through)."""
        return self.unet(latents, t, encoder_hidden_states=cond, added_cond_kwargs=added, return_dict=False)[0]

    def compiled_call(self, latents: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                      added: dict | None = None) -> torch.Tensor:
        """The compiled UNet call (its compiled blocks on this thread, or the whole compiled module)."""
        if self.regions is not None:
            with self.regions.on():
                return self.eager(latents, t, cond, added)
        return self.compiled_module(latents, t, encoder_hidden_states=cond, added_cond_kwargs=added,
                                    return_dict=False)[0]

    def swap_in(self) -> list[str]:
        """Between jobs: the signatures whose background compile finished run compiled from now on.
        Returns their labels (shapes)."""
        if self.compiler is None:
            return []
        new = [task for task in self.compiler.ready() if task.key not in self.compiled_keys]
        self.compiled_keys |= {task.key for task in new}
        if new and self.status is not None:
            self.status(f"compiled UNet swapped in [{', '.join(t.label for t in new)}]")
        return [task.label for task in new]

    @property
    def engine(self) -> str:
        """What runs, for a status line: ``eager``, ``graphs``, ``compiling 2x4x64x64…``, ``compiled``."""
        if self.graphed is None:
            return "eager"
        if self.compiler is None:
            return "compiled" if self.options.compile else "graphs"
        summary = self.compiler.summary()
        if summary == "compiled" and not self.compiled_keys:
            return "graphs (compiled from the next job)"
        return summary

    @contextlib.contextmanager
    def eager_graphs(self, cache: "GraphedCallable"):
        """Replay ``cache`` (graphs of ``eager``, e.g. with probes inside) instead of the plain graphs, and never
        the compiled ones, inside the block (core.attention records heat maps this way)."""
        graphed, self.graphed = self.graphed, cache
        self._eager_only += 1
        try:
            yield cache
        finally:
            self.graphed = graphed
            self._eager_only -= 1

    @property
    def status(self) -> Status | None:
        return self.graphed.status if self.graphed is not None else None

    @status.setter
    def status(self, fn: Status | None) -> None:
        for part in (self.graphed, self.compiled_graphed, self.compiler):
            if part is not None:
                part.status = fn

    @property
    def captures(self) -> list[Capture]:
        return self.graphed.captures if self.graphed is not None else []

    @staticmethod
    def timestep(t: Any, device: torch.device) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            if t.device == device:
                return t.reshape(())
            return torch.full((), t.item(), dtype=t.dtype, device=device)
        return torch.full((), t, dtype=torch.float32 if isinstance(t, float) else torch.int64, device=device)

    def __call__(self, latents: torch.Tensor, t: Any, cond: torch.Tensor, added: dict | None = None) -> torch.Tensor:
        """``added``: SDXL's ``added_cond_kwargs`` (text_embeds, time_ids), graphed like the rest."""
        t = self.timestep(t, latents.device)
        if self.graphed is None:
            with self.setup():
                return (self.compiled_call if self.options.compile else self.eager)(latents, t, cond, added).contiguous()
        if self.compiler is not None and not self._eager_only:
            key, _, leaves = signature((latents, t, cond, added), {})
            if key in self.compiled_keys:
                return self.compiled_graphed(latents, t, cond, added)
            self.compiler.request(key, "x".join(map(str, latents.shape)), lambda: _copies(leaves, (latents, t, cond, added)))
        return self.graphed(latents, t, cond, added)


def _copies(leaves: list, call: tuple) -> tuple[tuple, dict, Any]:
    """The compile thread's own copies of a call's tensors, and an event it waits for before reading them."""
    copies = {id(x): x.detach().clone() for x in leaves if isinstance(x, torch.Tensor)}
    latents, t, cond, added = call
    added = None if added is None else {k: copies.get(id(v), v) for k, v in added.items()}
    event = torch.cuda.Event() if latents.is_cuda else None
    if event is not None:
        event.record()
    return (copies[id(latents)], copies[id(t)], copies[id(cond)], added), {}, event


def compiled(unet: torch.nn.Module, mode: str) -> Callable:
    """``torch.compile(unet)`` for fixed shapes (each new shape compiles once, then is graphed)."""
    options = {"mode": mode} if COMPILE_BACKEND == "inductor" else {}
    return torch.compile(unet, backend=COMPILE_BACKEND, dynamic=False, **options)


def _attn_names(unet: torch.nn.Module) -> set[str]:
    return {type(p).__name__ for p in getattr(unet, "attn_processors", {}).values()}


def _set_memory_format(module: torch.nn.Module, fmt: torch.memory_format) -> None:
    module.to(memory_format=fmt)


def enable_fast_paths(model, *, graphs: bool = True, channels_last: bool = True, fuse_qkv: bool = True,
                      sdpa: bool = True, cudnn_benchmark: bool = False, vae_channels_last: bool = False,
                      compile: str = "", compile_background: bool = False, compile_regions: bool = False,
                      status: Status | None = None) -> FastOptions:
    """Turn on the fast paths for ``model`` (a ``LoadedModel``); returns what is actually on.

    ``compile_background``: the UNet's graphs come from the eager module at once while ``compile`` runs on a
    thread of its own; finished shapes swap in at ``swap_in()`` (between jobs). Artifacts go to the user's
    cache (``core.compile_cache``), so a later launch compiles in seconds.

    Only CUDA gets them: elsewhere nothing changes and every option comes back off.
    Calling it again first undoes the previous call, so options can be changed freely.
    """
    check_compile_mode(compile)
    disable_fast_paths(model)
    if model.device.type != "cuda":
        if status is not None:
            status(f"fast paths are for CUDA; {model.device.type} runs the eager UNet")
        return FastOptions(False, False, False, False, False, False, "", False, False)
    unet = model.unet
    saved = {"attn": dict(unet.attn_processors)}
    if sdpa and not _attn_names(unet) <= set(SDPA_PROCESSORS):
        from diffusers.models.attention_processor import AttnProcessor2_0

        unet.set_attn_processor(AttnProcessor2_0())
    if fuse_qkv:
        try:
            unet.fuse_qkv_projections()
        except ValueError:  # added-KV attention cannot be fused
            fuse_qkv = False
    if channels_last:
        _set_memory_format(unet, torch.channels_last)
    if vae_channels_last:
        _set_memory_format(model.vae, torch.channels_last)
    if compile:
        choice = compile_cache.use()
        if status is not None and choice.folder is None:
            status(choice.note)
    options = FastOptions(graphs, channels_last, fuse_qkv, sdpa and _attn_names(unet) <= set(SDPA_PROCESSORS),
                          cudnn_benchmark, vae_channels_last, compile, compile_background and graphs and bool(compile),
                          compile_regions and bool(compile))
    fast = FastUNet(unet, options, status)
    fast.saved = saved
    model.unet_forward = fast
    if status is not None:
        status(f"fast paths on: {options.describe()}")
    return options


def disable_fast_paths(model) -> None:
    """Back to the plain eager UNet: original attention processors, contiguous weights, no graphs."""
    fast = getattr(model, "unet_forward", None)
    if not isinstance(fast, FastUNet):
        return
    model.unet_forward = None
    for graphs in (fast.graphed, fast.compiled_graphed):
        if graphs is not None:
            graphs.clear()
    if fast.regions is not None:
        fast.regions.remove()
    unet = model.unet
    unet.set_attn_processor(fast.saved["attn"])
    for module in unet.modules():
        for name in ("to_qkv", "to_kv"):
            if hasattr(module, name) and hasattr(module, "fused_projections"):
                delattr(module, name)
                module.fused_projections = False
    _set_memory_format(unet, torch.contiguous_format)
    _set_memory_format(model.vae, torch.contiguous_format)


def graph_module_forward(module: torch.nn.Module, name: str = "UNet", status: Status | None = None,
                         autotune: bool = False) -> GraphedCallable:
    """Swap ``module.forward`` for a graphed one (e.g. ``pipe.unet`` of a diffusers pipeline).

    ``autotune``: cuDNN benchmark mode while capturing. Returns the ``GraphedCallable``;
    ``restore_module_forward(module)`` undoes it.
    """
    restore_module_forward(module)
    setup = (lambda: cudnn_benchmark(True)) if autotune else None
    graphed = GraphedCallable(module.forward, name, status, setup=setup)
    module.forward = graphed
    return graphed


def restore_module_forward(module: torch.nn.Module) -> None:
    if isinstance(module.__dict__.get("forward"), GraphedCallable):
        module.__dict__["forward"].clear()
        del module.forward
