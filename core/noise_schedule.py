"""The noise schedule as numbers: ᾱ_t, sqrt(1 - ᾱ_t), the signal-to-noise ratio and sigma over t.

The forward process mixes a clean image with noise: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε. ``ᾱ_t``
(``alphas_cumprod``) is how much signal is left at step t; ``sqrt(1 - ᾱ_t)`` is the noise's share;
``SNR = ᾱ_t / (1 - ᾱ_t)``; ``sigma = sqrt((1 - ᾱ_t) / ᾱ_t)`` is the same level in the
variance-exploding units that Euler-type samplers use (``SNR = 1 / sigma²``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class NoiseSchedule:
    """One scheduler's training schedule, per training timestep t = 0 … T-1."""

    name: str
    alpha_bar: np.ndarray = field(repr=False)  #: ᾱ_t, float64 [T]

    @property
    def timesteps(self) -> np.ndarray:
        return np.arange(len(self.alpha_bar))

    @property
    def noise(self) -> np.ndarray:
        """sqrt(1 - ᾱ_t): the noise's coefficient in x_t."""
        return np.sqrt(1 - self.alpha_bar)

    @property
    def snr(self) -> np.ndarray:
        return self.alpha_bar / (1 - self.alpha_bar)

    def sigma(self, t: float) -> float:
        """sqrt((1 - ᾱ_t) / ᾱ_t) at ``t`` (rounded to the nearest training step, as the samplers' x0 is)."""
        a = float(self.alpha_bar[int(np.clip(round(float(t)), 0, len(self.alpha_bar) - 1))])
        return float(np.sqrt((1 - a) / a))


def schedule_of(scheduler, name: str = "") -> NoiseSchedule:
    """The schedule of any diffusers scheduler with ``alphas_cumprod`` (every one the engine uses)."""
    alpha_bar = np.asarray(scheduler.alphas_cumprod.double().cpu().numpy(), dtype=np.float64)
    return NoiseSchedule(name or type(scheduler).__name__, alpha_bar)


def fashion_schedule() -> NoiseSchedule:
    """The Fashion-MNIST model's: the chapter's ``DDPMScheduler(1000, 1e-4, 0.02)`` (linear betas)."""
    from .fashion.model import build_scheduler

    return schedule_of(build_scheduler(), "Fashion DDPM (linear)")
