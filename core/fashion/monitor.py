"""Class fidelity while training: sample every class, score the samples with the shipped classifier.

``score_model(model, per_class, steps)`` draws ``per_class`` samples of each of the ten classes
(DDIM with ``steps`` steps, fixed seed) and returns them with the share the classifier
(``core.fashion.classifier``, trained only on real images) assigns to the class asked for. Run after
each epoch it shows the classes appear while the loss falls; ``epoch_model(trainer)`` is the model
to score then (the weights' moving average when the run keeps one).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from .classifier import FidelityReport, class_fidelity, classify, load_classifier
from .model import FashionDDPM
from .sampler import generate_from_class

SCORE_PER_CLASS = 4  #: samples per class scored after each epoch (40 images)
SCORE_STEPS = 50  #: DDIM steps for them


@dataclass
class Scored:
    """Samples (class-major ``[10*n, 1, 32, 32]`` in [0, 1]) and their class fidelity."""

    images: torch.Tensor
    per_class: int
    report: FidelityReport


_classifiers: dict[str, torch.nn.Module] = {}


def classifier(device: torch.device | str = "cpu") -> torch.nn.Module:
    """The shipped classifier on ``device``, loaded once per device."""
    key = str(device)
    if key not in _classifiers:
        _classifiers[key] = load_classifier(device)
    return _classifiers[key]


def score_model(model: FashionDDPM, per_class: int = SCORE_PER_CLASS, steps: int = SCORE_STEPS, seed: int = 0,
                cancel: threading.Event | None = None, color_target: float | None = None,
                color_scale: float = 0.0) -> Scored:
    """Sample ``per_class`` images of every class and score them (see the module docstring)."""
    was_training = model.unet.training
    model.unet.eval()
    try:
        images = generate_from_class(model, list(range(10)), n=per_class, steps=steps, seed=seed, cancel=cancel,
                                     color_target=color_target, color_scale=color_scale)
    finally:
        model.unet.train(was_training)
    wanted = torch.arange(10).repeat_interleave(per_class)
    got = classify(images, classifier(images.device), value_range="0..1")
    return Scored(images.float().cpu(), per_class, class_fidelity(wanted, got))


def epoch_model(trainer, label: str = "training run") -> FashionDDPM:
    """The model a running ``Trainer`` would ship now: its weights' moving average if it keeps one."""
    unet = trainer.ema.averaged() if getattr(trainer, "ema", None) is not None else trainer.model
    return FashionDDPM(unet, trainer.config.model, label)
