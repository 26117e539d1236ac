"""The learning rate over a run: a linear warm-up, then constant or a cosine decay (issue 24, item 1).

A short run gets to a good model sooner with a warm-up (AdamW's moment estimates are noisy in the first
steps, and a full-size step from random weights can throw the run off) and a decay at the end (the last
steps average out the noise instead of adding to it). The shape is diffusers' ``get_cosine_schedule_with_warmup``
(``diffusers.optimization``), computed here from the step alone so that a resumed run, which knows only its
step, continues on the same curve::

    warm-up (step < W):   lr * (step + 1) / W
    constant:             lr
    cosine:               lr * 0.5 * (1 + cos(pi * (step - W) / (total - W)))     (0 at the last step)

``set_lr(optimizer, value)`` writes it into every parameter group before a step: into the group's tensor in
place where the learning rate is a tensor (the whole-step CUDA graph reads it from there), else as a number.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def lr_at(step: int, total: int, lr: float, warmup: int = 0, schedule: str = "constant") -> float:
    """The learning rate of optimizer step ``step`` (0-based) of a ``total``-step run."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer, value: float) -> None:
    """Every parameter group of ``optimizer`` (a ``torch.optim.Optimizer``) gets the learning rate ``value``: a
    tensor one is filled in place. (No torch import here: ``fashion``'s CLI reads ``SCHEDULES`` before torch.)"""
    for group in optimizer.param_groups:
        if hasattr(group["lr"], "fill_"):  # a tensor
            group["lr"].fill_(value)
        else:
            group["lr"] = value
