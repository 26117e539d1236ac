"""An exponential moving average of model weights: what diffusion models sample from.

Ho et al. sample DDPM from an EMA of the weights (decay 0.9999), not the last iterate: each optimizer
step nudges the weights along a noisy gradient, and the average smooths that noise out, which shows
most in a short run's samples. After every step, for every floating-point parameter and buffer::

    ema = decay * ema + (1 - decay) * weight        # torch._foreach_lerp_(shadow, weights, 1 - decay)

One fused update on the device, with no host sync, so it fits a CUDA-graph training loop. The
average starts from the weights it is given; with decay 0.999 its horizon is ~1,000 steps.
``warmup=True`` lets the decay grow with the step, ``min(decay, (1 + step) / (10 + step))``, so an
average that starts at random weights forgets them quickly (the tiny model's recipe).

Used by the Fashion-MNIST trainer (``TrainConfig.ema_decay``) and ``core.tiny.train``.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch


class EMA:
    """``update(step)`` after each optimizer step; ``shadow`` holds the averages.

    The weights are read through views taken at construction: optimizers update them in place.
    """

    def __init__(self, modules: torch.nn.Module | Sequence[torch.nn.Module], decay: float,
                 warmup: bool = False) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be between 0 and 1, not {decay}")
        self.modules = [modules] if isinstance(modules, torch.nn.Module) else list(modules)
        self.decay, self.warmup = decay, warmup
        self.live = [t for m in self.modules for t in _floats(m).values()]
        self.shadow = [t.detach().clone() for t in self.live]

    @torch.no_grad()
    def update(self, step: int = 0) -> None:
        d = min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay
        torch._foreach_lerp_(self.shadow, self.live, 1.0 - d)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        """Put the averages into the live weights (at the end of a run whose average is the result)."""
        torch._foreach_copy_(self.live, self.shadow)

    def averaged(self) -> torch.nn.Module:
        """A copy of the (single) module holding the averages; the live module is untouched."""
        (module,) = self.modules
        out = copy.deepcopy(module).eval().requires_grad_(False)
        out.load_state_dict(self.state_dict())
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The (single) module's state_dict with the averages in place of its floats (for checkpoints)."""
        (module,) = self.modules
        return {**module.state_dict(), **dict(zip(_floats(module), self.shadow))}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        (module,) = self.modules
        for name, shadow in zip(_floats(module), self.shadow):
            shadow.copy_(state[name])


def _floats(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's floating-point parameters and buffers, by ``state_dict`` name and order."""
    return {k: t for k, t in module.state_dict().items() if t.is_floating_point()}
