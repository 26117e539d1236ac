"""How long a run will take on this machine, said before it starts (issue 26: ``--size 4096x4096`` on a CPU ran for
many minutes with no word).

A run's work is counted from the model's configs, not guessed from its size alone: a UNet call's multiply-adds are
its convolutions (linear in the latent's pixels) plus its self-attention (quadratic in them: at 4096x4096 the
tiny model's top level attends over 262,144 positions), and the VAE decode is counted the same way. One small
timed UNet call (``calibrate``: a 32x32 latent, one row) gives this machine's rate; the estimate is the run's
count over that rate. A small call runs below the machine's best rate, so the estimate errs long, never short: on
2 cores (2026-12-03, the tiny model, under load) 54 s for a 20 s run at 512x512, 286 s for 78 s at 1024x1024.

Pure and torch-free except ``calibrate``; ``core.sampler`` does not call it: the CLI and the app do, where a
person waits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

#: say how long before a run that will take longer than this (seconds)
WORTH_SAYING_S = 60.0
CALIBRATION_SIDE = 32  #: latent side of the timed call
#: runs of fewer multiply-adds are not timed at all: about a minute or less on 2 cores (2-5e9 a second in fp32)
CHEAP_MACS = 1.2e11


def _attention(tokens: float, channels: int, context: int, context_dim: int) -> float:
    """Multiply-adds of one transformer block (self-attention, cross-attention, GEGLU feed-forward) over
    ``tokens`` positions of ``channels`` channels; ``context`` text tokens of ``context_dim``."""
    c = channels
    self_attn = 4 * tokens * c * c + 2 * tokens * tokens * c  # q, k, v, out projections; QK^T and AV
    cross = 2 * tokens * c * c + 2 * context * context_dim * c + 2 * tokens * context * c
    feed_forward = tokens * c * 8 * c + tokens * 4 * c * c  # GEGLU: c -> 8c (two halves of 4c), 4c -> c
    return self_attn + cross + feed_forward


def unet_macs(config: dict, latent_h: int, latent_w: int, rows: int, context: int = 77) -> float:
    """Multiply-adds of one UNet call on ``rows`` latents of ``latent_h x latent_w`` (from its ``config``)."""
    channels = list(config.get("block_out_channels", (320, 640, 1280, 1280)))
    kinds = list(config.get("down_block_types", ["CrossAttnDownBlock2D"] * len(channels)))
    layers = int(config.get("layers_per_block", 2))
    context_dim = int(config.get("cross_attention_dim", 768) if not isinstance(config.get("cross_attention_dim"), list)
                      else config["cross_attention_dim"][0])
    depth = config.get("transformer_layers_per_block", 1)
    total = 0.0
    for level, (c, kind) in enumerate(zip(channels, kinds)):
        pixels = (latent_h / 2**level) * (latent_w / 2**level)
        blocks = layers + (layers + 1)  # the down block's resnets and the up block's
        total += blocks * 2 * 9 * c * c * pixels  # two 3x3 convolutions per resnet
        if "CrossAttn" in kind:
            per = depth[level] if isinstance(depth, list) else depth
            total += blocks * per * _attention(pixels, c, context, context_dim)
    c, pixels = channels[-1], (latent_h / 2 ** (len(channels) - 1)) * (latent_w / 2 ** (len(channels) - 1))
    total += 2 * 2 * 9 * c * c * pixels + _attention(pixels, c, context, context_dim)  # the mid block
    return rows * total


def vae_decode_macs(config: dict, latent_h: int, latent_w: int, rows: int) -> float:
    """Multiply-adds of decoding ``rows`` latents (the decoder's resnets per level, its mid-block attention)."""
    channels = list(reversed(config.get("block_out_channels", (128, 256, 512, 512))))
    layers = int(config.get("layers_per_block", 2)) + 1
    total = 0.0
    for level, c in enumerate(channels):  # level 0 at the latent's size, each next level twice the side
        pixels = latent_h * latent_w * 4**level
        total += layers * 2 * 9 * c * c * pixels
    c, pixels = channels[0], latent_h * latent_w
    total += 2 * 2 * 9 * c * c * pixels + 4 * pixels * c * c + 2 * pixels * pixels * c  # mid resnets + attention
    return rows * total


@dataclass(frozen=True)
class Estimate:
    """A run's expected seconds on this machine and what they are made of."""

    seconds: float
    unet_calls: int  #: denoising steps, one UNet call each (a guided batch carries both halves in one call)
    what: str  #: "30 steps x 2 rows at 512x512 latents"

    @property
    def worth_saying(self) -> bool:
        return self.seconds > WORTH_SAYING_S

    def line(self, device: str) -> str:
        return (f"about {duration(self.seconds)} on this {device} ({self.what}): ctrl+c stops; a smaller --size or "
                f"fewer --steps is quicker")


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(unet_config: dict, vae_config: dict, latent_h: int, latent_w: int, unet_rows: int, steps: int,
             images: int, macs_per_s: float) -> Estimate:
    """The run's seconds at ``macs_per_s`` (``calibrate``'s): ``steps`` UNet calls on ``unet_rows`` rows (text and
    unconditional rows together), then ``images`` decodes."""
    work = steps * unet_macs(unet_config, latent_h, latent_w, unet_rows) + vae_decode_macs(vae_config, latent_h,
                                                                                           latent_w, images)
    return _over_rate(work, steps, unet_rows, latent_h, latent_w, macs_per_s)


def _over_rate(work: float, steps: int, unet_rows: int, latent_h: int, latent_w: int, macs_per_s: float) -> Estimate:
    """``work`` multiply-adds at ``macs_per_s``, described."""
    if not (macs_per_s > 0 and math.isfinite(macs_per_s)):
        raise ValueError(f"a rate of {macs_per_s} multiply-adds a second")
    what = f"{steps} step{'s' if steps != 1 else ''} x {unet_rows} UNet rows at {latent_w}x{latent_h} latents"
    return Estimate(work / macs_per_s, steps, what)


def run_macs(model, settings, images: int, guided: bool) -> tuple[float, int, int, int]:
    """``(multiply-adds, latent height, latent width, UNet rows)`` of ``images`` images of ``settings`` on ``model``."""
    f = model.vae_scale_factor
    width, height = settings.width or model.default_size[0], settings.height or model.default_size[1]
    rows = images * (2 if guided else 1)
    macs = settings.steps * unet_macs(dict(model.unet.config), height // f, width // f, rows)
    return macs + vae_decode_macs(dict(model.vae.config), height // f, width // f, images), height // f, width // f, rows


def before_run(model, settings, images: int, guided: bool) -> Estimate | None:
    """How long a run on a CPU will take, when that is worth saying (over ``WORTH_SAYING_S``), else None.
    Cheap runs are not timed; GPUs and SDXL (whose UNet needs its added conditions to be called) are not estimated."""
    if model.device.type != "cpu" or model.family.startswith("sdxl"):
        return None
    macs, h, w, rows = run_macs(model, settings, images, guided)
    if macs < CHEAP_MACS:
        return None
    est = _over_rate(macs, settings.steps, rows, h, w, calibrate(model))  # the work counted once, above
    return est if est.worth_saying else None


def calibrate(model) -> float:
    """This machine's multiply-adds per second for ``model``'s UNet: one timed call on a small latent (after one
    untimed call, so lazy set-up is not counted)."""
    import torch

    side = CALIBRATION_SIDE
    unet = model.unet
    latents = torch.zeros(1, int(unet.config.in_channels), side, side, device=model.device, dtype=model.dtype)
    width = model.text_encoder.config.hidden_size if model.text_encoder is not None else 768
    cond = torch.zeros(1, 77, width, device=model.device, dtype=model.dtype)
    t = torch.tensor([500], device=model.device)
    with torch.no_grad():
        model.predict(latents, t, cond)
        start = time.perf_counter()
        model.predict(latents, t, cond)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        took = max(time.perf_counter() - start, 1e-6)
    return unet_macs(dict(unet.config), side, side, 1) / took
