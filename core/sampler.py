"""The chapter's annotated sampling loop: what ``pipe()`` does, written out step by step.

One way in: ``sample(model, settings, rows, *, refiner=None, handoff=0.8, callback=None, cancel=None)``
checks the request once and runs it, through one model or an SDXL base and its refiner (``core.refiner``).
``generate`` (``n`` images) and ``sweep`` (one image per guidance scale, one batch) only build the rows
(``core.batch_rows``); ``core.grid_run`` (grids, and sweeps: one-axis grids) does the same per batch. ``denoise``
is the loop itself: each row of the batch has its own guidance scale; rows with scale <= 1 skip the
unconditional pass ("no CFG"), as diffusers does. A ``Span`` runs only part of the schedule (the hand-off between two models).
Prompt editing (``[from:to:when]``, ``core.prompt_editing``): the text conditioning is one per run of steps in which
no row's text changes, and the loop takes the step's (step 3a).
"""

from __future__ import annotations

import inspect
import threading
import time
from dataclasses import dataclass

import torch
from PIL import Image

from . import refiner as handoff_plan, vae
from .batch_rows import Row, check_rows, image_rows, scale_rows
from .conditioning import Encoder
from .errors import Cancelled, UserError
from .fast import ieee_fp32
from .guided_batch import GuidedBatch
from .finite import check_result
from .loss_guidance import steer
from .prompt_editing import row_schedules
from .results import GenerationResult, StepCallback
from .schedulers import make_scheduler, name_of, set_steps
from .settings import SampleSettings
from .step_reports import StepReports
from .tokens import breakdown
from .vae import encode, fit, image_tensor, to_rgb


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


def row_generators(settings: SampleSettings, rows: list[Row]) -> list[torch.Generator]:
    """A CPU generator per row, each seeded with its row's seed (a grid's seed axis) or else the settings':
    cell i equals a one-row run."""
    return [torch.Generator("cpu").manual_seed(settings.seed if r.seed is None else r.seed) for r in rows]


def batch_generator(settings: SampleSettings) -> torch.Generator:
    """One CPU generator for the whole batch: its rows draw different noise from one seed (diffusers'
    ``num_images_per_prompt``), and a seed gives the same image on CPU and GPU."""
    return torch.Generator("cpu").manual_seed(settings.seed)


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

    pixels = image_tensor(fit(to_rgb(settings.init_image), (width, height))).expand(rows, -1, -1, -1)
    init = encode(model.vae, pixels, generators).to(model.dtype)
    keep = min(int(settings.steps * settings.strength), settings.steps)
    begin = (settings.steps - keep) * scheduler.order
    timesteps = scheduler.timesteps[begin:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    noise = randn_tensor(shape, generator=generators, device=model.device, dtype=model.dtype)
    return scheduler.add_noise(init, noise, timesteps[:1].repeat(rows)), timesteps


@torch.no_grad()
@ieee_fp32
def denoise(model, settings: SampleSettings, rows: list[Row], generators: torch.Generator | list,
            callback: StepCallback | None = None, cancel: threading.Event | None = None,
            span: Span | None = None) -> GenerationResult:
    """Sample one image per row of one prompt; each row has its own scale and negative prompt.

    ``span``: only part of the schedule, maybe from given latents (None: all of it, from noise)."""
    t_start = time.perf_counter()
    width, height = settings.width or model.default_size[0], settings.height or model.default_size[1]
    n = len(rows)
    guidance = GuidedBatch([r.scale for r in rows], model.device, model.dtype)  # which rows need the uncond pass
    timings: dict[str, float] = {}

    # 1. Tokenize the prompt and each negative prompt ("" = unconditional) to 77 tokens (75-token chunks
    #    for longer prompts, core.chunks); encode them, weighting tokens as A1111 (core.prompt_weights).
    #    The UNet sees [uncond rows..., text rows...], like the chapter's torch.cat([uncond, text]).
    #    Prompt editing ([from:to:when], core.prompt_editing): each row's texts resolved per run of steps,
    #    each distinct text encoded once, one Conditioning per run (a plain prompt: one, for every step).
    edits = row_schedules(settings.prompt, rows, settings.steps)
    conds = Encoder(model, settings.long_prompt).schedule(settings.prompt, rows, width, height, edits)
    timings["encode_s"] = time.perf_counter() - t_start

    # 2. Prepare the scheduler and the starting latents.
    scheduler = make_scheduler(settings.scheduler, model.scheduler)
    set_steps(scheduler, settings.steps)  # host timesteps (no GPU->host sync in step); refuses counts it cannot take
    if span is None or span.latents is None:
        latents, timesteps = _start(model, settings, scheduler, n, width, height, generators)
    else:  # a hand-off: the previous model's latents, already at the noise level where this span begins
        latents, timesteps = span.latents.to(model.device, model.dtype), scheduler.timesteps
    first = len(scheduler.timesteps) - len(timesteps)  # img2img skips the schedule's first steps
    if span is not None:
        timesteps = _window(scheduler, timesteps, span)
        first += span.first
    step_kwargs = {}
    params = inspect.signature(scheduler.step).parameters
    if "generator" in params:
        step_kwargs["generator"] = generators
    if "eta" in params:
        step_kwargs["eta"] = 0.0
    steer_colour = settings.color_target is not None and settings.color_scale > 0

    t_loop = time.perf_counter()
    reports = StepReports(callback, model, t_start)
    for i, t in enumerate(timesteps):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled at step {i}/{len(timesteps)}")
        # 3a. Prompt editing: from a switch step on, the next text conditioning (a new tensor of the same
        #     shape: a CUDA graph of the UNet copies it into its static input; more chunks: one more capture).
        cond = conds.at(first + i)
        # 3a'. One copy of the latents per text row, plus one per guided row for the unconditional pass.
        latent_in = guidance.expand(latents)
        # 3b. Some schedulers (Euler, LMS) scale the input by the current noise level.
        latent_in = scheduler.scale_model_input(latent_in, t)
        # 3c. Predict the noise residual (or v) for every row in one UNet call.
        noise_pred = model.predict(latent_in, t, cond.hidden, cond.added)
        # 3d. Classifier-free guidance: uncond + s * (text - uncond) on the guided rows (core.guided_batch).
        noise_pred = guidance.blend(noise_pred)
        # 3d'. Optional loss guidance: nudge the latents towards a colour (exercise 9).
        if steer_colour:
            latents = steer(model, scheduler, latents, noise_pred, t, settings.color_target,
                            settings.color_scale, lambda x, e: x0_from(scheduler, x, e, t), len(timesteps))
        # 3e. Step: compute the previous noisy sample x_t -> x_t-1.
        model_input = guidance.text_half(latent_in)
        out = scheduler.step(noise_pred, t, latents, **step_kwargs)
        # 3f. Report the step: on CUDA its preview reaches the host one step late, so the GPU never waits
        #     for the host (core.step_reports).
        if callback is not None:
            x0 = x0_estimate(scheduler, out, latents, model_input, noise_pred, t)
            reports.report(i, len(timesteps), float(t), out.prev_sample, x0, first + i)
        latents = out.prev_sample
    reports.flush()
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)  # the loop only queues work; time what the GPU did
    timings["denoise_s"] = time.perf_counter() - t_loop
    check_result(latents, "the latents", model=model, settings=settings)  # a NaN image is never published
    timings["step_ms"] = 1000 * timings["denoise_s"] / max(1, len(timesteps))

    # 4. Decode: undo the VAE's scaling factor, decode, map [-1, 1] -> [0, 1].
    t_dec = time.perf_counter()
    images = decode(model, latents) if span is None or span.decode else []
    timings["decode_s"] = time.perf_counter() - t_dec
    timings["total_s"] = time.perf_counter() - t_start
    dropped = " | ".join(dict.fromkeys(d for text in edits[0].prompt.texts
                                       if (d := breakdown(model.tokenizer, text, settings.long_prompt).dropped_text)))
    return GenerationResult(images=images, scales=[r.scale for r in rows], latents=latents, settings=settings,
                            model_name=model.name, scheduler_name=name_of(scheduler),
                            timings=timings, dropped_tokens=dropped, rows=list(rows), edits=edits)


@torch.no_grad()
@ieee_fp32
def decode(model, latents: torch.Tensor) -> list[Image.Image]:
    """Latents (in the sampler's scaled space) -> PIL images (``core.vae.decode``)."""
    pixels = vae.decode(model.vae, latents)
    check_result(pixels, "the decoded image", model=model)
    return vae.to_images(pixels)




def sample(model, settings: SampleSettings, rows: list[Row], *, refiner=None,
           handoff: float = handoff_plan.DEFAULT_FRACTION, callback: StepCallback | None = None,
           cancel: threading.Event | None = None, batch_noise: bool = False) -> GenerationResult:
    """The one way into the sampler: one prompt, one image per row, sampled as one batch.

    Checks the request once (the model, the rows, the settings unless already validated for this model's
    size multiple, the refiner pair), then runs it. ``refiner``: an SDXL refiner that finishes the base's
    latents after the first ``handoff`` of the schedule (a ``core.refiner.RefinedResult`` comes back).
    Noise: each row draws from its own CPU generator seeded with ``settings.seed``, so row i equals a
    one-row run (a row's own ``seed``, if set, seeds its generator); ``batch_noise``: one generator draws every
    row's noise in turn, as diffusers' ``num_images_per_prompt`` does (its comparisons use it).
    ``callback(StepInfo)`` after every step (through both models: one count); ``cancel`` stops within a step.
    """
    # 1. Check the request once, before anything slow.
    fraction = None
    if refiner is not None:
        fraction = handoff_plan.check_fraction(handoff)
        handoff_plan.check_pair(model, refiner)
        handoff_plan.check_settings(settings)
    elif model is None:
        raise UserError("no model is loaded: load one first (--model tiny).")
    elif model.family == "sdxl-refiner":
        raise UserError(f"{model.name} is an SDXL refiner, which finishes another model's images: "
                        "pass it as --refiner with an SDXL base --model.")
    rows = check_rows(list(rows))
    settings = settings.validate(multiple=model.vae_scale_factor)
    # 2. The noise: a generator per row, or one for the batch.
    generators = batch_generator(settings) if batch_noise else row_generators(settings, rows)
    if refiner is None:
        return denoise(model, settings, rows, generators, callback, cancel)
    return _refine(model, refiner, settings, rows, generators, fraction, callback, cancel)


def _refine(base, refiner, settings: SampleSettings, rows: list[Row], generators, fraction: float,
            callback: StepCallback | None, cancel: threading.Event | None) -> handoff_plan.RefinedResult:
    """The hand-off, checked: the base to the cut-off, then the refiner from its latents."""
    stop, first, refiner_steps = handoff_plan.plan(base, refiner, settings, fraction)
    total = stop + refiner_steps
    t0 = time.perf_counter()
    # 1. The base: from pure noise down to the cut-off; its latents are handed on, not decoded.
    high = denoise(base, settings, rows, generators, handoff_plan.relay(callback, 0, total), cancel,
                   span=Span(stop=stop, decode=False))
    # 2. The refiner: from those latents (same noise level, no noise added) down to t = 0, then the VAE.
    low = denoise(refiner, settings, rows, generators, handoff_plan.relay(callback, stop, total), cancel,
                  span=Span(first=first, latents=high.latents))
    timings = handoff_plan.stage_timings(high.timings, low.timings, total, time.perf_counter() - t0)
    return handoff_plan.RefinedResult(
        images=low.images, scales=low.scales, latents=low.latents, settings=settings, model_name=base.name,
        scheduler_name=high.scheduler_name, timings=timings, dropped_tokens=high.dropped_tokens, rows=low.rows,
        edits=high.edits,
        refiner_name=refiner.name, high_noise_frac=fraction, base_steps=stop, refiner_steps=refiner_steps)


def generate(model, settings: SampleSettings, n: int = 1, callback: StepCallback | None = None,
             cancel: threading.Event | None = None, *, refiner=None,
             handoff: float = handoff_plan.DEFAULT_FRACTION) -> GenerationResult:
    """``n`` images at ``settings.guidance_scale``, image i from seed ``settings.seed + i`` (its own CPU
    generator): image i is what ``--seed seed+i -n 1`` gives, a seed gives the same image on CPU and GPU, and
    one image is diffusers' pipeline's for that seed."""
    return sample(model, settings, image_rows(settings, n), refiner=refiner, handoff=handoff,
                  callback=callback, cancel=cancel)


def sweep(model, settings: SampleSettings, scales: list[float], callback: StepCallback | None = None,
          cancel: threading.Event | None = None, *, refiner=None,
          handoff: float = handoff_plan.DEFAULT_FRACTION) -> GenerationResult:
    """One seed, several guidance scales, one batch: every UNet call carries all rows.

    Each row draws its noise from its own generator seeded with ``settings.seed``, so cell i equals a
    single ``generate`` at ``scales[i]`` (stochastic schedulers included).
    """
    return sample(model, settings, scale_rows(settings, scales), refiner=refiner, handoff=handoff,
                  callback=callback, cancel=cancel)
