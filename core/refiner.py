"""SDXL's refiner hand-off: the base model denoises most of the way, the refiner finishes.

SDXL ships two UNets. The base is trained on the whole noise schedule; the refiner only on its
low-noise end (the last 200 of the 1000 training timesteps, "the last 20%"), where what is left to do
is detail: skin, hair, texture. So a run is split at a fraction ``f`` of the schedule (``0.8`` by default):

    base    runs the timesteps t >= cutoff     (high noise: composition)   -> latents, not decoded
    refiner runs the timesteps t <  cutoff     (low noise:  detail)        -> latents -> VAE -> image
    cutoff = round(T - f * T)                  (T = 1000 training timesteps; f = 0.8 -> t = 200)

Both models share one schedule of ``steps`` timesteps, so the base's last latents are exactly at the
noise level where the refiner's first step begins: no noise is added in between (unlike image-to-image).
The refiner reads the same prompt through its own text encoder (OpenCLIP bigG only) and its own time
ids: original size, crop top-left and an aesthetic score (6 on the text rows, 2.5 on the negative ones).

This equals diffusers' ``StableDiffusionXLPipeline(..., denoising_end=f, output_type="latent")`` followed by
``StableDiffusionXLImg2ImgPipeline(image=latents, denoising_start=f)``, with one generator passed to both.
It runs through the one sampling entry point, ``core.sampler.sample(base, settings, rows, refiner=...,
handoff=f)``; this module holds what is particular to it: the checks, the plan of the split, the result.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import UserError
from .inputs import is_fraction
from .results import GenerationResult, StepCallback
from .schedulers import make_scheduler, set_steps
from .settings import SampleSettings
from .step_reports import same_needs

DEFAULT_FRACTION = 0.8  #: the base's share of the schedule in the SDXL report and diffusers' docs


@dataclass
class RefinedResult(GenerationResult):
    """A ``GenerationResult`` whose PNG parameters also name the refiner and the hand-off point."""

    refiner_name: str = ""
    high_noise_frac: float = DEFAULT_FRACTION
    base_steps: int = 0  #: timesteps the base ran
    refiner_steps: int = 0  #: timesteps the refiner ran

    def parameters(self, i: int = 0) -> str:
        """A1111's keys for the hand-off: ``Refiner: NAME, Refiner switch at: 0.8``."""
        return super().parameters(i) + f", Refiner: {self.refiner_name}, Refiner switch at: {self.high_noise_frac:g}"


def check_fraction(value) -> float:
    """``high_noise_frac`` (``--refiner-at``): the base's share of the schedule, strictly between 0 and 1."""
    if not is_fraction(value):
        raise UserError(f"--refiner-at must be between 0 and 1, exclusive (got {value}): "
                        f"try {DEFAULT_FRACTION}, the base's share of the schedule.")
    return float(value)


def check_settings(settings: SampleSettings) -> SampleSettings:
    """What the hand-off cannot take (an image-to-image start), as a one-line ``UserError``."""
    if settings.init_image is not None:
        raise UserError("--init-image cannot be combined with --refiner: drop one of them.")
    return settings


def check_base(base) -> None:
    """An SDXL base model, or a one-line ``UserError``."""
    if base is None:
        raise UserError("the refiner hand-off needs an SDXL base: pass --model BASE.")
    if base.family != "sdxl":
        raise UserError(f"--model {base.name} is an {base.family} model: the SDXL refiner finishes SDXL base "
                        "images; pass an SDXL base model (e.g. stabilityai/stable-diffusion-xl-base-1.0).")


def check_pair(base, refiner) -> None:
    """An SDXL base and an SDXL refiner that can share latents, or a one-line ``UserError``."""
    check_base(base)
    if refiner is None:
        raise UserError("the refiner hand-off needs a refiner: pass --refiner REFINER.")
    if refiner.family != "sdxl-refiner":
        raise UserError(f"--refiner {refiner.name} is an {refiner.family} model, not an SDXL refiner: pass "
                        "stabilityai/stable-diffusion-xl-refiner-1.0 or a folder like it.")
    same = (base.unet.config.in_channels == refiner.unet.config.in_channels
            and base.vae_scale_factor == refiner.vae_scale_factor)
    if not same:
        raise UserError(f"--refiner {refiner.name} uses other latents than {base.name}: pass the refiner made "
                        "for this base.")


def cutoff(scheduler, fraction: float) -> int:
    """The hand-off timestep, diffusers' ``discrete_timestep_cutoff``: ``round(T - f * T)``."""
    total = scheduler.config.num_train_timesteps
    return int(round(total - fraction * total))


def base_stop(scheduler, fraction: float) -> int:
    """How many of the base's timesteps run (``denoising_end``): those at or above the cut-off."""
    limit = cutoff(scheduler, fraction)
    return len([t for t in scheduler.timesteps if t >= limit])


def refiner_first(scheduler, fraction: float) -> int:
    """Where the refiner's run starts in its schedule (``denoising_start``): at the first timestep below
    the cut-off. A second-order scheduler (Heun) lists every timestep but the first twice; the refiner's
    part must not begin between the two halves of one step, so an even count gets one more."""
    count = int((scheduler.timesteps < cutoff(scheduler, fraction)).sum())
    if scheduler.order == 2 and count % 2 == 0:
        count += 1
    return len(scheduler.timesteps) - count


def plan(base, refiner, settings: SampleSettings, fraction: float) -> tuple[int, int, int]:
    """``(base_stop, refiner_first, refiner_steps)``, from fresh copies of each model's scheduler set as
    ``denoise`` sets them (the schedule is a pure function of the config and the step count)."""
    marks = []
    for model, where in ((base, base_stop), (refiner, refiner_first)):
        scheduler = make_scheduler(settings.scheduler, model.scheduler)
        set_steps(scheduler, settings.steps)
        marks.append((where(scheduler, fraction), len(scheduler.timesteps)))
    (stop, _), (first, length) = marks
    if stop < 1 or first >= length:
        who = "base" if stop < 1 else "refiner"
        raise UserError(f"{settings.steps} steps with --refiner-at {fraction:g} leave the {who} no step: "
                        "raise --steps or move --refiner-at towards 0.5.")
    return stop, first, length - first


def relay(callback: StepCallback | None, offset: int, total: int) -> StepCallback | None:
    """Report both stages as one run: step numbers continue from the base into the refiner."""
    if callback is None:
        return None
    return same_needs(lambda info: callback(replace(info, index=info.index + offset, total=total)), callback)


def stage_timings(high: dict, low: dict, steps: int, total_s: float) -> dict[str, float]:
    """Both stages' timings: encode and denoise summed (and each stage's denoise), the refiner's decode."""
    denoise_s = high["denoise_s"] + low["denoise_s"]
    return {"encode_s": high["encode_s"] + low["encode_s"], "denoise_s": denoise_s,
            "step_ms": 1000 * denoise_s / max(1, steps), "decode_s": low["decode_s"], "total_s": total_s,
            "base_denoise_s": high["denoise_s"], "refiner_denoise_s": low["denoise_s"]}
