"""The tiny model's reproducible training recipe.

    python -m sd_explorer.core.tiny.train --data ../shared/data/fashion-mnist-8k --out OUT_DIR [--device cuda]

1. The VAE (L1 + MSE + a small KL term, random horizontal flips) on the training split (all but the
   last 1,024 images, which stay held out); ``scaling_factor`` = 1 / std of its latents, as SD did.
2. The text encoder jointly with the UNet on the frozen VAE's latents: DDPM noise (SD 1.x's
   betas), epsilon MSE, captions from ``core.tiny.captions`` with 10% empty ones for classifier-free
   guidance; an EMA of both networks is what gets saved.
3. The folder is saved in fp16 (diffusers format) with ``training.json`` (settings, losses, times).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..ema import EMA
from ..errors import UserError, run_main

from . import batches, build, captions, configs, grounding
from .data import HELD_OUT, load_fashion, to_model_images
from ..clip_vocab import clip_tokenizer


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _lr_lambda(steps: int, warmup: int):
    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    return fn


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _flip(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    mask = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def train_vae(vae, images: torch.Tensor, steps: int, batch: int, lr: float, kl_weight: float,
              log: list, every: int = 250, seconds: float = math.inf, stop_at: int = 0) -> int:
    """Train ``vae`` in place on ``uint8 [N, 28, 28]`` images; returns the steps done.

    The learning-rate schedule spans ``steps``; ``stop_at`` (> 0) ends the run after that many steps
    and ``seconds`` is a safety cap on the time, so a run cut short can be reproduced exactly.
    """
    device = images.device
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps, min(200, steps // 10 + 1)))
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, images.shape[0], (batch,), device=device)
        x = _flip(to_model_images(images[idx]))
        with _autocast(device):
            dist = vae.encode(x).latent_dist
            recon = vae.decode(dist.sample()).sample.float()
        mse = F.mse_loss(recon, x)
        loss = mse + F.l1_loss(recon, x) + kl_weight * dist.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        last = step == steps - 1 or step + 1 == stop_at or time.perf_counter() - start > seconds
        if step % every == 0 or last:
            psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-12))  # [-1, 1] range -> peak 2
            entry = {"stage": "vae", "step": step, "loss": round(loss.item(), 5), "psnr": round(psnr, 2),
                     "seconds": round(time.perf_counter() - start, 1)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if last:
            break
    vae.eval()
    return step + 1


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent mean and std of every image and of its mirror image: two ``[2N, 4, 8, 8]`` tensors."""
    means, stds = [], []
    for flip in (False, True):
        for i in range(0, images.shape[0], batch):
            x = to_model_images(images[i:i + batch])
            dist = vae.encode(x.flip(-1) if flip else x).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
    return torch.cat(means), torch.cat(stds)


def train_denoiser(text_encoder, unet, pool: batches.Pool, scaling: float, singles: grounding.CaptionTable,
                   pairs: grounding.CaptionTable | None, steps: int, batch: int, lr: float, ema_decay: float,
                   empty_p: float, log: list, every: int = 250, seconds: float = math.inf, stop_at: int = 0,
                   pair_batch: int = 0, ground_weight: float = 0.0, ground_pool: str = "max") -> int:
    """Train text encoder + UNet jointly (epsilon prediction); leaves the EMA weights in place.

    With ``pairs`` (and ``pair_batch`` > 0), odd steps train on two garments side by side at 128x64
    (``pair_batch`` of them), even steps on ``batch`` single garments at 64x64. ``ground_weight`` > 0
    adds ``core.tiny.grounding``'s loss on where each garment token's cross-attention falls.
    Returns the steps done (``stop_at`` and ``seconds`` as in ``train_vae``).
    """
    from diffusers import DDPMScheduler

    device = pool.mean.device
    noise_sched = DDPMScheduler(**configs.SCHEDULE)
    alphas = noise_sched.alphas_cumprod.to(device)
    singles = singles.to(device)
    pairs = pairs.to(device) if pairs is not None and pair_batch > 0 else None
    processors = dict(unet.attn_processors)
    probe = grounding.install(unet) if ground_weight > 0 else None
    modules = [text_encoder, unet]
    params = [p for m in modules for p in m.parameters()]
    for m in modules:
        m.train()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps, min(500, steps // 10 + 1)))
    ema = EMA(modules, ema_decay, warmup=True)
    start = time.perf_counter()
    for step in range(steps):
        two = pairs is not None and step % 2 == 1
        b = (batches.pair(pool, pairs, pair_batch, scaling, empty_p) if two
             else batches.single(pool, singles, batch, scaling, empty_p))
        ids = (pairs if two else singles).ids[b.rows]
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (b.z0.shape[0],), device=device)
        noise = torch.randn_like(b.z0)
        a = alphas[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * b.z0 + (1 - a).sqrt() * noise
        if probe is not None:
            probe.store = []
        with _autocast(device):
            states = text_encoder(ids)[0]
            pred = unet(zt, t, encoder_hidden_states=states).sample.float()
        mse = F.mse_loss(pred, noise)
        loss = mse
        ground = None
        if probe is not None:
            ground = grounding.grounding_loss(probe.store, b.marks, b.masks, ground_pool)
            probe.store = None
            loss = mse + ground_weight * ground
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.update(step)
        last = step == steps - 1 or step + 1 == stop_at or time.perf_counter() - start > seconds
        if step % every == 0 or (pairs is not None and step % every == 1) or last:
            entry = {"stage": "unet", "step": step, "batch": "pair" if two else "single",
                     "loss": round(mse.item(), 5), "seconds": round(time.perf_counter() - start, 1)}
            if ground is not None:
                entry["grounding"] = round(ground.item(), 5)
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if last:
            break
    ema.copy_to_params()
    unet.set_attn_processor(processors)
    for m in modules:
        m.eval()
    return step + 1


def run(args: argparse.Namespace) -> Path:
    """The whole recipe; returns the saved folder."""
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:  # fail before training
        raise UserError(f"{args.out} already exists and is not empty: choose another --out or pass --overwrite.")
    _seed(args.seed)
    device = torch.device(args.device)
    data = load_fashion(args.data)
    train, _held = data.split(args.held_out)
    if args.limit:
        train.images, train.labels = train.images[:args.limit], train.labels[:args.limit]
    images = train.images.to(device)
    labels = train.labels.to(device)
    parts = build.load_components(args.init) if args.init else build.build_components(args.seed)
    parts.vae.to(device)
    log: list = []
    t0 = time.perf_counter()
    if args.init:  # the VAE is kept as it is, with its scaling factor
        vae_done = 0
        mean, std = encode_latents(parts.vae, images)
        scaling = float(parts.vae.config.scaling_factor)
    else:
        vae_done = train_vae(parts.vae, images, args.vae_steps, args.vae_batch, args.vae_lr, args.kl_weight,
                             log, seconds=args.vae_seconds, stop_at=args.vae_stop_at)
        mean, std = encode_latents(parts.vae, images)
        scaling = float(1.0 / (mean + std * torch.randn_like(mean)).std())
        parts.vae.register_to_config(scaling_factor=scaling)
    print(json.dumps({"scaling_factor": scaling}), flush=True)
    t1 = time.perf_counter()
    parts.text_encoder.to(device)
    parts.unet.to(device)
    tok = clip_tokenizer()
    masks = grounding.object_masks(to_model_images(images))
    pool = batches.Pool(mean, std, labels.repeat(2), torch.cat([masks, masks.flip(-1)]))
    pairs = grounding.pair_table(tok, args.pair_captions, args.seed) if args.pair_batch > 0 else None
    unet_done = train_denoiser(parts.text_encoder, parts.unet, pool, scaling, grounding.single_table(tok), pairs,
                               args.unet_steps, args.unet_batch, args.unet_lr, args.ema, args.empty_p, log,
                               seconds=args.unet_seconds, stop_at=args.unet_stop_at,
                               pair_batch=args.pair_batch, ground_weight=args.ground_weight,
                               ground_pool=args.ground_pool)
    t2 = time.perf_counter()
    for name in ("text_encoder", "vae", "unet"):
        getattr(parts, name).to("cpu")
    record = {
        "settings": {k: str(v) for k, v in sorted(vars(args).items())},
        "steps_done": {"vae": vae_done, "unet": unet_done},
        "train_images": int(images.shape[0]), "held_out": args.held_out,
        "scaling_factor": scaling, "vae_seconds": round(t1 - t0, 1), "unet_seconds": round(t2 - t1, 1),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "parameters": build.parameter_counts(parts), "log": log,
    }
    if args.init and (Path(args.init) / "training.json").is_file():  # a continued run keeps what it continued
        before = json.loads((Path(args.init) / "training.json").read_text())
        before.pop("log", None)
        record["continued_from"] = before
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "training.json"
        rec.write_text(json.dumps(record, indent=1) + "\n")
        return build.save_folder(parts, args.out, overwrite=args.overwrite, extra_files={"training.json": rec})


def parser() -> argparse.ArgumentParser:
    """Command-line options (the defaults are the shipped model's recipe)."""
    p = argparse.ArgumentParser(description="Train the tiny Stable Diffusion on captioned Fashion-MNIST.")
    p.add_argument("--data", type=Path, required=True, help="folder with Fashion-MNIST's IDX files")
    p.add_argument("--out", type=Path, required=True, help="diffusers folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--held-out", type=int, default=HELD_OUT)
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke tests)")
    p.add_argument("--vae-steps", type=int, default=4000)
    p.add_argument("--vae-batch", type=int, default=128)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--unet-steps", type=int, default=8000)
    p.add_argument("--unet-batch", type=int, default=512)
    p.add_argument("--unet-lr", type=float, default=4e-4)
    p.add_argument("--ema", type=float, default=0.999)
    # The shipped model's run was cut by time caps (100 s / 230 s on an H200) at these steps of its
    # 4000 / 8000-step schedules; stopping at them reproduces it on any machine.
    p.add_argument("--vae-stop-at", type=int, default=2384, help="stop after this many VAE steps (0: all)")
    p.add_argument("--unet-stop-at", type=int, default=3408, help="stop after this many UNet steps (0: all)")
    p.add_argument("--vae-seconds", type=float, default=math.inf, help="safety cap on VAE training time")
    p.add_argument("--unet-seconds", type=float, default=math.inf, help="safety cap on UNet training time")
    p.add_argument("--empty-p", type=float, default=captions.EMPTY_P)
    p.add_argument("--init", type=Path, default=None,
                   help="start from this tiny model folder: keep its VAE, train its text encoder + UNet further")
    p.add_argument("--pair-batch", type=int, default=0,
                   help="two-garment 128x64 images per pair step (every other step; 0: single garments only)")
    p.add_argument("--pair-captions", type=int, default=24, help="random captions per ordered class pair")
    p.add_argument("--ground-pool", choices=("max", "avg"), default="max",
                   help="garment masks at the attention grids: max (any garment pixel) or avg (its share)")
    p.add_argument("--ground-weight", type=float, default=0.0,
                   help="weight of the grounding loss (garment tokens' attention on their garment; 0: off)")
    return p


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    args = parser().parse_args(argv)
    folder = run(args)
    print(json.dumps({"saved": str(folder), "bytes": build.folder_bytes(folder)}), flush=True)


if __name__ == "__main__":
    run_main(main)
