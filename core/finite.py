"""Finite results: a NaN or inf image, latent, sample or loss is never published as a success.

The one check where results are made: ``check_result(tensor, what, model=..., settings=...)`` passes a
finite tensor and otherwise raises ``NonFinite`` (a ``UserError``: one line, exit code 2, nothing written)
whose message names the likely cause, found by ``diagnose``: weights that hold NaN/inf, a scheduler whose
betas leave (0, 1), an absurd VAE ``scaling_factor``, a prompt weight, the guidance or colour scale — in
that order — and, when none of those is to blame, the precision. The diagnosis runs only after a failure,
so a good run pays one ``isfinite`` per result.

The sane ranges are defined here, where every form and flag that types them checks them
(``check_color_scale``; prompt weights in ``core.prompt_weights.check_weights``; guidance in ``core.guidance``).
"""

from __future__ import annotations

import math

from .errors import UserError
from .prompt_weights import parse

MAX_COLOR_SCALE = 10_000.0  #: colour/grey-loss guidance strength (the chapter uses 20-200)
VAE_SCALING = (1e-3, 1e3)  #: a VAE ``scaling_factor`` outside this is a damaged config (SD 0.18215, SDXL 0.13025)


class NonFinite(UserError):
    """A result (image, latents, samples, loss) came out NaN or infinite; the message names the likely cause."""


def is_finite(tensor) -> bool:
    """Every element of ``tensor`` is finite (integers and bools always are)."""
    import torch

    if not torch.is_tensor(tensor) or not (tensor.is_floating_point() or tensor.is_complex()):
        return True
    return bool(torch.isfinite(tensor).all())


def bad_tensor(module) -> str | None:
    """The name of ``module``'s first parameter or buffer holding NaN/inf (or a bool where a weight is
    expected), else None."""
    if module is None:
        return None
    for name, value in list(module.named_parameters()) + list(module.named_buffers()):
        if not is_finite(value):
            return name
    return None


def _weights(model) -> str | None:
    for part in ("unet", "text_encoder", "text_encoder_2", "vae"):
        name = bad_tensor(getattr(model, part, None))
        if name is not None:
            return f"the {part} weights hold NaN or inf values (e.g. {name}): the model files are damaged; fetch the model again"
    return None


def scheduler_problem(scheduler) -> str | None:
    """Why ``scheduler``'s noise schedule cannot give an image (betas outside (0, 1), a non-finite
    cumulative alpha), else None."""
    import torch

    betas = getattr(scheduler, "betas", None)
    if torch.is_tensor(betas) and betas.numel() and not (is_finite(betas) and bool((betas > 0).all())
                                                         and bool((betas < 1).all())):
        cfg = getattr(scheduler, "config", {})
        return (f"the scheduler config's betas leave (0, 1) (beta_start {cfg.get('beta_start')}, beta_end "
                f"{cfg.get('beta_end')}): fix scheduler_config.json, e.g. 0.00085 and 0.012")
    abar = getattr(scheduler, "alphas_cumprod", None)
    if torch.is_tensor(abar) and abar.numel() and not (is_finite(abar) and bool((abar > 0).all())):
        return "the scheduler's cumulative alphas reach 0 or are not finite: fix scheduler_config.json's betas"
    return None


def vae_problem(vae) -> str | None:
    """Why the VAE's ``scaling_factor`` cannot be right, else None."""
    factor = getattr(getattr(vae, "config", None), "get", lambda *_: 0.18215)("scaling_factor", 0.18215)
    lo, hi = VAE_SCALING
    if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and math.isfinite(factor)
            and lo <= abs(factor) <= hi):
        return (f"the VAE's scaling_factor {factor!r} is outside {lo:g} to {hi:g}: fix vae/config.json "
                "(SD uses 0.18215, SDXL 0.13025)")
    return None


def diagnose(model=None, settings=None) -> str:
    """The likely cause of a non-finite result, as the end of a one-line message."""
    for why in (_weights(model) if model is not None else None,
                scheduler_problem(getattr(model, "scheduler", None)) if model is not None else None,
                vae_problem(getattr(model, "vae", None)) if model is not None else None):
        if why:
            return why
    if settings is not None:
        for text, label in ((settings.prompt, "prompt"), (settings.negative_prompt, "negative prompt")):
            top = max((abs(f.weight) for f in parse(text or "").fragments if not f.is_break), default=1.0)
            if top > 10:
                return f"a {label} weight of {top:.3g} overflows the text conditioning: use weights from 0 to 10, e.g. (word:1.3)"
        if settings.guidance_scale > 30:
            return f"guidance scale {settings.guidance_scale:g} overflows: use e.g. 7.5"
        if settings.color_target is not None and settings.color_scale > 1000:
            return f"colour scale {settings.color_scale:g} overflows: use e.g. 20 to 200"
    dtype = getattr(model, "dtype", None)
    if dtype is not None and "float16" in str(dtype):
        return "half precision overflowed: try --dtype fp32 (or bf16), a lower guidance scale or smaller prompt weights"
    return "the model or these settings overflow: try a lower guidance scale, smaller prompt weights or --dtype fp32"


def check_result(tensor, what: str, *, model=None, settings=None, cause: str | None = None) -> None:
    """Raise ``NonFinite`` naming the likely cause unless ``tensor`` is finite; ``what`` names the result
    (``"the decoded image"``), ``cause`` overrides the diagnosis."""
    if is_finite(tensor):
        return
    raise NonFinite(f"{what} came out NaN or infinite, so nothing was written: {cause or diagnose(model, settings)}.")


def check_color_scale(value, what: str = "colour loss scale") -> float:
    """A colour/grey-loss scale: finite, 0 to ``MAX_COLOR_SCALE``, or a one-line ``UserError``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 <= value <= MAX_COLOR_SCALE:
        raise UserError(f"{what} must be a finite number from 0 to {MAX_COLOR_SCALE:g} (got {value}): e.g. 20 to 200.")
    return float(value)


def check_loss(values, step: int, checkpoint: str | None) -> None:
    """Training: raise ``NonFinite`` when a loss of ``values`` (a tensor or list) is NaN/inf, saying that the
    run stopped at ``step`` and which checkpoint is the last good one."""
    import torch

    tensor = values if torch.is_tensor(values) else torch.tensor(list(values), dtype=torch.float64)
    if is_finite(tensor):
        return
    kept = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written by this run"
    raise NonFinite(f"the training loss became NaN or infinite by step {step}: stopped without saving it; {kept}. "
                    "Lower --lr, or check the weights or checkpoint this run started from.")
