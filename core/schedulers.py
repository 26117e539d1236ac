"""Schedulers by name, all built from the model's own scheduler config (``from_config``)."""

from __future__ import annotations

from .errors import UserError

#: name shown to people -> (diffusers class name, extra config)
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "DDPM": ("DDPMScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {"skip_prk_steps": True}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "LMS": ("LMSDiscreteScheduler", {}),
}

_ALIASES = {"".join(ch for ch in k.lower() if ch.isalnum()): k for k in SCHEDULERS}
_ALIASES.update({"eulera": "Euler ancestral", "dpmpp2m": "DPM++ 2M", "dpm2m": "DPM++ 2M"})


def canonical_name(name: str) -> str:
    """Accept any spelling ("euler-ancestral", "dpm++2m", "ddim") and return the canonical name."""
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    if key not in _ALIASES:
        raise UserError(f"unknown scheduler {name!r}: use one of {', '.join(SCHEDULERS)}.")
    return _ALIASES[key]


def name_of(scheduler) -> str:
    """The canonical name of a scheduler instance (or its class name if it is not one of ours)."""
    cls = type(scheduler).__name__
    for name, (cls_name, _) in SCHEDULERS.items():
        if cls == cls_name:
            return name
    return cls


def make_scheduler(name: str | None, base):
    """A fresh scheduler: ``name`` built from ``base``'s config, or a fresh copy of ``base`` itself.

    Schedulers keep per-run state (step index, multistep history), so every run gets its own.
    """
    import diffusers

    if name is None:
        scheduler = type(base).from_config(base.config)
    else:
        cls_name, extra = SCHEDULERS[canonical_name(name)]
        scheduler = getattr(diffusers, cls_name).from_config(base.config, **extra)
    # Latents are not confined to [-1, 1], and SD was trained with steps_offset 1: diffusers' pipelines
    # patch old configs the same way, so we do too (and stay equal to them).
    fixes = {}
    if scheduler.config.get("clip_sample") is True:
        fixes["clip_sample"] = False
    if "steps_offset" in scheduler.config and scheduler.config.steps_offset != 1:
        fixes["steps_offset"] = 1
    if scheduler.config.get("skip_prk_steps") is False:  # PNDM's Runge-Kutta warm-up breaks below ~12 steps
        fixes["skip_prk_steps"] = True
    return type(scheduler).from_config(scheduler.config, **fixes) if fixes else scheduler


def set_steps(scheduler, steps: int) -> None:
    """``scheduler.set_timesteps(steps)``, refused with the largest count that works when a timestep would
    fall outside the training schedule (e.g. PNDM or DDIM at 1000 steps with ``steps_offset`` 1 reach
    timestep 1000 of 0-999): a one-line ``UserError`` before the first step, not an ``IndexError`` after the last."""
    total = int(scheduler.config.num_train_timesteps)
    offset = int(scheduler.config.get("steps_offset", 0) or 0)
    limit = total - offset if scheduler.config.get("timestep_spacing", "leading") == "leading" else total
    if steps > limit:
        raise UserError(f"{steps} steps is more than {name_of(scheduler)} can take with this model "
                        f"({total} training timesteps): use at most {limit}.")
    scheduler.set_timesteps(steps)
    if len(scheduler.timesteps) and float(max(scheduler.timesteps)) >= total:
        raise UserError(f"{steps} steps is more than {name_of(scheduler)} can take with this model: use fewer, e.g. {limit // 2}.")


def check_steps(model, settings) -> None:
    """Refuse a step count the run's scheduler cannot take (``set_steps``' check) before any slow work: the
    CLI calls it right after loading, so a refused count is the only line, never after a time estimate."""
    set_steps(make_scheduler(settings.scheduler, model.scheduler), settings.steps)
