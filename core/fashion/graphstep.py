"""A whole training step (forward, backward, optimizer) captured once as a CUDA graph.

On a GPU this small UNet is limited by the host launching its ~2,000 kernels per step, not by the
GPU itself; replaying one graph per step removes that. The batch's random numbers are drawn outside
the graph (the same generator calls as the eager path), so graph and eager runs consume identical
randomness. The first ``warmup`` steps run eagerly on a side stream (they are real training steps),
as PyTorch's whole-network capture recipe asks; partial batches always run eagerly.
"""

from __future__ import annotations

from typing import Callable

import torch

StepFn = Callable[..., torch.Tensor]


class GraphedTrainStep:
    """Call with the batch tensors; returns the step's loss (valid until the next call)."""

    def __init__(self, step_fn: StepFn, zero_grad: Callable[[], None], warmup: int = 3) -> None:
        self.step_fn = step_fn
        self.zero_grad = zero_grad
        self.warmup = warmup
        self.static: tuple[torch.Tensor, ...] | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.loss: torch.Tensor | None = None
        self.side = torch.cuda.Stream()

    def matches(self, inputs: tuple[torch.Tensor, ...]) -> bool:
        """Whether these inputs fit the captured shapes (partial batches do not)."""
        return self.static is None or all(
            s.shape == x.shape and s.stride() == x.stride() for s, x in zip(self.static, inputs)
        )

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.static is None:
            self.static = tuple(x.clone() for x in inputs)
        else:
            for s, x in zip(self.static, inputs):
                s.copy_(x)
        if self.graph is None:
            if self.warmup > 0:
                self.warmup -= 1
                self.side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(self.side):
                    self.zero_grad()
                    loss = self.step_fn(*self.static)
                torch.cuda.current_stream().wait_stream(self.side)
                return loss
            self.zero_grad()  # gradients are then allocated inside the graph's memory pool
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.loss = self.step_fn(*self.static)
            self.graph = graph
        self.graph.replay()
        assert self.loss is not None
        return self.loss
