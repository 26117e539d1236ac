"""An exponential moving average of the UNet's weights: what DDPM samples from.

Ho et al. sample from an EMA of the weights (decay 0.9999), not the last iterate: each optimizer step
nudges the weights along a noisy gradient, and the average smooths that noise out, which shows most
in a short run's samples. After every step, for every parameter and buffer::

    ema = decay * ema + (1 - decay) * weight        # torch._foreach_lerp_(ema, weights, 1 - decay)

One fused update on the device, with no host sync, so it fits the CUDA-graph training loop. The
average starts from the initial weights; with decay 0.999 its horizon is ~1,000 steps.
"""

from __future__ import annotations

import copy

import torch


class EMA:
    """``update(model)`` after each optimizer step; ``module`` is the averaged copy to sample from."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be between 0 and 1, not {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self._targets = _floats(self.module)
        self._sources: tuple[int, list[torch.Tensor]] | None = None

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        if self._sources is None or self._sources[0] != id(model):
            # views of the live weights: the optimizer updates them in place, so they stay current
            self._sources = (id(model), _floats(model))
        torch._foreach_lerp_(self._targets, self._sources[1], 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
        self._targets = _floats(self.module)


def _floats(module: torch.nn.Module) -> list[torch.Tensor]:
    """The module's floating-point parameters and buffers, in ``state_dict`` order."""
    return [t for t in module.state_dict().values() if t.is_floating_point()]
