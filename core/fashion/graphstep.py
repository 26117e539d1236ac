"""A whole training step (forward, backward, optimizer) captured once as a CUDA graph (``core.cuda_graphs``).

On a GPU this small UNet is limited by the host launching its ~2,000 kernels per step, not by the
GPU itself; replaying one graph per step removes that. The batch's random numbers are drawn outside
the graph (the same generator calls as the eager path), so graph and eager runs consume identical
randomness. The first ``warmup`` steps run eagerly on a side stream (they are real training steps),
as PyTorch's whole-network capture recipe asks; partial batches always run eagerly.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..cuda_graphs import CapturedGraph, capture, static_inputs, warm_up

StepFn = Callable[..., torch.Tensor]


class GraphedTrainStep:
    """Call with the batch tensors; returns the step's loss (valid until the next call)."""

    def __init__(self, step_fn: StepFn, zero_grad: Callable[[], None], warmup: int = 3) -> None:
        self.step_fn = step_fn
        self.zero_grad = zero_grad
        self.warmup = warmup
        self.static: tuple[torch.Tensor, ...] | None = None
        self.graph: CapturedGraph | None = None
        self.side = torch.cuda.Stream()

    def matches(self, inputs: tuple[torch.Tensor, ...]) -> bool:
        """Whether these inputs fit the captured shapes (partial batches do not)."""
        return self.static is None or all(
            s.shape == x.shape and s.stride() == x.stride() for s, x in zip(self.static, inputs)
        )

    def _eager_step(self) -> torch.Tensor:
        self.zero_grad()
        return self.step_fn(*self.static)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.graph is not None:
            return self.graph.replay(*inputs)
        if self.static is None:
            self.static = static_inputs(*inputs)
        else:
            for s, x in zip(self.static, inputs):
                s.copy_(x)
        if self.warmup > 0:  # a real training step, on the side stream
            self.warmup -= 1
            return warm_up(self._eager_step, stream=self.side)
        self.zero_grad()  # gradients are then allocated inside the graph's memory pool
        self.graph = capture(self.step_fn, self.static)
        return self.graph.replay()  # the capture only recorded: this runs the step
