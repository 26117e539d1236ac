"""Regional compilation: torch.compile the UNet's repeated blocks, switched on per thread and per call.

Compiling the whole SD 1.5 UNet takes about a minute per input shape on an H200 (Dynamo traces ~1,500
ops, Inductor generates their kernels); compiling only its repeated blocks (the transformer blocks, where
the attention, LayerNorm and GEGLU elementwise work is, and the ResNet blocks with their GroupNorm + SiLU)
takes seconds, because the blocks of one shape share one generated graph (Inductor's graph cache) and
nothing else is traced. PyTorch's recipe: https://docs.pytorch.org/tutorials/recipes/regional_compilation.html;
diffusers' ``ModelMixin.compile_repeated_blocks`` does the same in place.

In place would change the eager UNet too, and the app runs both side by side: the eager module's CUDA
graphs sample while the compile runs, and heat maps always record through the eager blocks (their probes
are Python). So each block's ``forward`` becomes a switch: the compiled block where :meth:`Regions.on` is
active *on this thread* (the compile thread, and the worker while it captures a compiled signature's
graph), the eager block everywhere else. CUDA graph replays run no Python, so what a graph holds is fixed
when it is captured.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

import torch

#: the blocks compiled (class names of diffusers' UNet2DConditionModel)
REGION_CLASSES = ("BasicTransformerBlock", "ResnetBlock2D")


class Regions:
    """``unet``'s blocks of ``classes``, each with a compiled twin used only inside ``on()``."""

    def __init__(self, unet: torch.nn.Module, compile_fn: Callable[[Callable], Callable],
                 classes: tuple[str, ...] = REGION_CLASSES):
        self._local = threading.local()
        self.blocks: list[torch.nn.Module] = []
        # the blocks of one class share their code object, so Dynamo counts every shape (channels x resolution)
        # as a recompile of one function: SD 1.5's ResNet blocks have more than the default limit of 8 (seen on
        # the H200: the rest then ran eagerly)
        config = torch._dynamo.config
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(config, name):
                setattr(config, name, max(getattr(config, name), 64))
        for module in unet.modules():
            if type(module).__name__ in classes and "forward" not in module.__dict__:
                eager = module.forward  # the bound method of the class
                module.forward = self._switch(eager, compile_fn(eager))
                self.blocks.append(module)

    def _switch(self, eager: Callable, compiled: Callable) -> Callable:
        local = self._local

        def forward(*args, **kwargs):
            return compiled(*args, **kwargs) if getattr(local, "on", False) else eager(*args, **kwargs)

        forward.regional_compile = True  # type: ignore[attr-defined]
        return forward

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        """The compiled blocks, on this thread, inside the block."""
        before = getattr(self._local, "on", False)
        self._local.on = True
        try:
            yield
        finally:
            self._local.on = before

    def remove(self) -> None:
        """Every block back to its plain ``forward``."""
        for module in self.blocks:
            module.__dict__.pop("forward", None)
        self.blocks.clear()

    def __len__(self) -> int:
        return len(self.blocks)
