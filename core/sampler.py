"""The chapter's annotated sampling loop: what ``pipe()`` does, written out step by step.

One function, ``denoise``, runs every kind of request: one prompt at one guidance scale (``generate``)
or one prompt at several scales sampled as one batch (``sweep``). Each row of the batch has its own
guidance scale; rows with scale <= 1 skip the unconditional pass ("no CFG"), as diffusers does.
A ``Span`` runs only part of the schedule (a hand-off between two models, ``core.refiner``).
"""

from __future__ import annotations

import inspect
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

from core.conditioning import Encoder, Row
from core.errors import Cancelled, UserError
from core.guidance import steer
from core.preview import latents_to_rgb
from core.results import GenerationResult, SampleSettings, StepInfo, check_scale
from core.schedulers import make_scheduler, name_of
from core.tokens import breakdown

StepCallback = Callable[[StepInfo], None]


@dataclass(frozen=True)
class Span:
    """Run only ``timesteps[first:stop]`` of the full schedule (what diffusers' ``denoising_start`` /
    ``denoising_end`` select). ``latents``: continue from these (another model's half-denoised latents)
    instead of fresh noise; ``decode``: False hands the latents on undecoded (no images)."""

    first: int = 0
    stop: int | None = None
    latents: torch.Tensor | None = None
    decode: bool = True


def _window(scheduler, timesteps, span: Span):
    """The span's slice of the schedule; a scheduler that counts its steps starts counting at ``first``."""
    if span.first and hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(span.first)
    return timesteps[span.first:span.stop]


def x0_from(scheduler, model_input: torch.Tensor, noise_pred: torch.Tensor, t) -> torch.Tensor:
    """x0 from the prediction type and the cumulative alpha at ``t``.

    ``model_input`` is the scaled input, which is x_t in the variance-preserving space every scheduler
    shares (Euler/LMS divide their sigma-space latents by sqrt(sigma^2 + 1) to get it).
    """
    a = scheduler.alphas_cumprod.to(model_input.device)[int(round(float(t)))].to(noise_pred.dtype)
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind == "v_prediction":
        return a.sqrt() * model_input - (1 - a).sqrt() * noise_pred
    if kind == "sample":
        return noise_pred
    return (model_input - (1 - a).sqrt() * noise_pred) / a.sqrt()


def x0_estimate(scheduler, out, latents: torch.Tensor, model_input: torch.Tensor,
                noise_pred: torch.Tensor, t) -> torch.Tensor:
    """The model's guess of the clean latents at this step: the scheduler's own
    ``pred_original_sample`` where it gives one, else ``x0_from`` (PNDM, DPM++)."""
    x0 = getattr(out, "pred_original_sample", None)
    return x0 if x0 is not None else x0_from(scheduler, model_input, noise_pred, t)


def _start(model, settings: SampleSettings, scheduler, rows: int, width: int, height: int, generators):
    """Step 2: the starting latents and the timesteps to run.

    Text-to-image starts from pure noise scaled by ``init_noise_sigma``. Image-to-image (the chapter's
    demo) encodes the image, skips the first ``1 - strength`` of the schedule and noises the image's
    latents to the first remaining timestep.
    """
    from diffusers.utils.torch_utils import randn_tensor

    shape = (rows, model.unet.config.in_channels, height // model.vae_scale_factor, width // model.vae_scale_factor)
    if settings.init_image is None:
        latents = randn_tensor(shape, generator=generators, device=model.device, dtype=model.dtype)
        return latents * scheduler.init_noise_sigma, scheduler.timesteps
    from core.vae import fit, to_rgb

    image = fit(to_rgb(settings.init_image), (width, height))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    x = x.to(model.device, model.vae.dtype).expand(rows, -1, -1, -1)
    init = model.vae.encode(x).latent_dist.sample(generators).to(model.dtype) * model.vae.config.scaling_factor
    keep = min(int(settings.steps * settings.strength), settings.steps)
    begin = (settings.steps - keep) * scheduler.order
    timesteps = scheduler.timesteps[begin:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    noise = randn_tensor(shape, generator=generators, device=model.device, dtype=model.dtype)
    return scheduler.add_noise(init, noise, timesteps[:1].repeat(rows)), timesteps


@torch.no_grad()
def denoise(model, settings: SampleSettings, rows: list[Row], generators: torch.Generator | list,
            callback: StepCallback | None = None, cancel: threading.Event | None = None,
            span: Span | None = None) -> GenerationResult:
    """Sample one image per row of one prompt; each row has its own scale and negative prompt.

    ``span``: only part of the schedule, maybe from given latents (None: all of it, from noise)."""
    t_start = time.perf_counter()
    width, height = settings.width or model.default_size[0], settings.height or model.default_size[1]
    n = len(rows)
    guided = [i for i, r in enumerate(rows) if r.guided]  # rows that need the unconditional pass
    timings: dict[str, float] = {}

    # 1. Tokenize the prompt and each negative prompt ("" = unconditional) to 77 tokens (75-token chunks
    #    for longer prompts, core.chunks); encode them, weighting tokens as A1111 (core.prompt_weights).
    #    The UNet sees [uncond rows..., text rows...], like the chapter's torch.cat([uncond, text]).
    cond = Encoder(model, settings.long_prompt).batch(settings.prompt, rows, width, height)
    timings["encode_s"] = time.perf_counter() - t_start

    # 2. Prepare the scheduler and the starting latents.
    scheduler = make_scheduler(settings.scheduler, model.scheduler)
    scheduler.set_timesteps(settings.steps)  # host timesteps: scheduler.step needs no GPU->host sync
    if span is None or span.latents is None:
        latents, timesteps = _start(model, settings, scheduler, n, width, height, generators)
    else:  # a hand-off: the previous model's latents, already at the noise level where this span begins
        latents, timesteps = span.latents.to(model.device, model.dtype), scheduler.timesteps
    if span is not None:
        timesteps = _window(scheduler, timesteps, span)
    step_kwargs = {}
    params = inspect.signature(scheduler.step).parameters
    if "generator" in params:
        step_kwargs["generator"] = generators
    if "eta" in params:
        step_kwargs["eta"] = 0.0
    s = torch.tensor([rows[i].scale for i in guided], device=model.device, dtype=model.dtype).view(-1, 1, 1, 1)
    every_row = len(guided) == n  # the common case: no index gathering needed
    guided_idx = torch.tensor(guided, device=model.device, dtype=torch.long)
    steer_colour = settings.color_target is not None and settings.color_scale > 0

    t_loop = time.perf_counter()
    for i, t in enumerate(timesteps):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled at step {i}/{len(timesteps)}")
        # 3a. One copy of the latents per text row, plus one per guided row for the unconditional pass.
        if guided:
            latent_in = torch.cat([latents if every_row else latents.index_select(0, guided_idx), latents])
        else:
            latent_in = latents
        # 3b. Some schedulers (Euler, LMS) scale the input by the current noise level.
        latent_in = scheduler.scale_model_input(latent_in, t)
        # 3c. Predict the noise residual (or v) for every row in one UNet call.
        noise_pred = model.predict(latent_in, t, cond.hidden, cond.added)
        # 3d. Classifier-free guidance: uncond + s * (text - uncond) on the guided rows.
        if guided:
            uncond_pred, text_pred = noise_pred[: len(guided)], noise_pred[len(guided):]
            if every_row:
                noise_pred = uncond_pred + s * (text_pred - uncond_pred)
            else:
                noise_pred = text_pred.index_copy(0, guided_idx, uncond_pred + s * (
                    text_pred.index_select(0, guided_idx) - uncond_pred))
        # 3d'. Optional loss guidance: nudge the latents towards a colour (exercise 9).
        if steer_colour:
            latents = steer(model, scheduler, latents, noise_pred, t, settings.color_target,
                            settings.color_scale, lambda x, e: x0_from(scheduler, x, e, t))
        # 3e. Step: compute the previous noisy sample x_t -> x_t-1.
        model_input = latent_in[-n:] if guided else latent_in
        out = scheduler.step(noise_pred, t, latents, **step_kwargs)
        if callback is not None:
            x0 = x0_estimate(scheduler, out, latents, model_input, noise_pred, t)
            preview = latents_to_rgb(x0, model.preview_factors, model.preview_bias)
            callback(StepInfo(i, len(timesteps), float(t), out.prev_sample, x0, preview,
                              time.perf_counter() - t_start))
        latents = out.prev_sample
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)  # the loop only queues work; time what the GPU did
    timings["denoise_s"] = time.perf_counter() - t_loop
    timings["step_ms"] = 1000 * timings["denoise_s"] / max(1, len(timesteps))

    # 4. Decode: undo the VAE's scaling factor, decode, map [-1, 1] -> [0, 1].
    t_dec = time.perf_counter()
    images = decode(model, latents) if span is None or span.decode else []
    timings["decode_s"] = time.perf_counter() - t_dec
    timings["total_s"] = time.perf_counter() - t_start
    dropped = breakdown(model.tokenizer, settings.prompt, settings.long_prompt).dropped_text
    return GenerationResult(images=images, scales=[r.scale for r in rows], latents=latents, settings=settings,
                            model_name=model.name, scheduler_name=name_of(scheduler),
                            timings=timings, dropped_tokens=dropped, rows=list(rows))


@torch.no_grad()
def decode(model, latents: torch.Tensor) -> list[Image.Image]:
    """Latents (in the sampler's scaled space) -> PIL images."""
    image = model.vae.decode((latents / model.vae.config.scaling_factor).to(model.vae.dtype)).sample
    image = (image / 2 + 0.5).clamp(0, 1)
    array = image.permute(0, 2, 3, 1).float().cpu().numpy()
    return [Image.fromarray(a) for a in (array * 255).round().astype(np.uint8)]


def _check(model, settings: SampleSettings) -> SampleSettings:
    if model is None:
        raise UserError("no model is loaded: load one first (--model tiny).")
    if model.family == "sdxl-refiner":
        raise UserError(f"{model.name} is an SDXL refiner, which finishes another model's images: "
                        "pass it as --refiner with an SDXL base --model.")
    return settings.validate(multiple=model.vae_scale_factor)


def generate(model, settings: SampleSettings, n: int = 1, callback: StepCallback | None = None,
             cancel: threading.Event | None = None) -> GenerationResult:
    """``n`` images at ``settings.guidance_scale``; one CPU generator seeded with ``settings.seed``,
    so a seed gives the same image on CPU and GPU (and the same as diffusers' pipeline)."""
    settings = _check(model, settings)
    check_count(n)
    generator = torch.Generator("cpu").manual_seed(settings.seed)
    row = Row(settings.guidance_scale, settings.negative_prompt)
    return denoise(model, settings, [row] * n, generator, callback, cancel)


def sweep(model, settings: SampleSettings, scales: list[float], callback: StepCallback | None = None,
          cancel: threading.Event | None = None) -> GenerationResult:
    """One seed, several guidance scales, one batch: every UNet call carries all rows.

    Each row draws its noise from its own generator seeded with ``settings.seed``, so cell i equals a
    single ``generate`` at ``scales[i]`` (stochastic schedulers included).
    """
    return sweep_rows(model, settings, scale_rows(settings, scales), callback, cancel)


def sweep_rows(model, settings: SampleSettings, rows: list[Row], callback: StepCallback | None = None,
               cancel: threading.Event | None = None) -> GenerationResult:
    """The general sweep: any mix of scales, negative prompts and SDXL size conditioning, one batch."""
    settings = _check(model, settings)
    check_rows(rows)
    return denoise(model, settings, rows, row_generators(settings, rows), callback, cancel)


def check_count(n: int) -> int:
    """An image count for one batch, or a one-line ``UserError``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
        raise UserError(f"image count must be from 1 to 64 (got {n}).")
    return n


def scale_rows(settings: SampleSettings, scales: list[float]) -> list[Row]:
    """The guidance sweep's rows: one per scale, each with the settings' negative prompt."""
    if not scales:
        raise UserError("the scale list is empty: give at least one scale, e.g. 1,2,4,12.")
    return [Row(check_scale(scale), settings.negative_prompt) for scale in scales]


def check_rows(rows: list[Row]) -> None:
    """One batch's rows: at least one, at most 16, every scale valid."""
    if not rows:
        raise UserError("nothing to sweep: give at least one value.")
    if len(rows) > 16:
        raise UserError(f"{len(rows)} cells is too many for one batch: use at most 16.")
    for row in rows:
        check_scale(row.scale)


def row_generators(settings: SampleSettings, rows: list[Row]) -> list[torch.Generator]:
    """A CPU generator per row, each seeded with its row's seed (else the settings'): cell i equals a single run."""
    return [torch.Generator("cpu").manual_seed(settings.seed if r.seed is None else r.seed) for r in rows]
