"""Fit the latent -> RGB preview factors of a VAE, as the community did for SD 1.x.

The sampler previews each step by mapping the x0 estimate's latents linearly to RGB, one pixel per
latent pixel (``core.preview.latents_to_rgb``: ``rgb = latents @ factors + bias`` in [-1, 1]).
SD's factors do not fit another VAE, so this fits ours by least squares: scaled latents of
held-out images against the images average-pooled to the latent grid. The result is saved as
``preview_factors.json`` in the model folder, which ``core.models`` reads when present.

    python -m sd_explorer.core.tiny.preview --model assets/tiny-sd --data ../shared/data/fashion-mnist-8k
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..atomic import write_bytes
from ..errors import UserError, run_main
from .data import HELD_OUT, load_fashion, to_model_images
from ..vae import scale_latents

FILENAME = "preview_factors.json"


@torch.no_grad()
def fit_preview(vae, images, batch: int = 256) -> dict:
    """Least-squares ``factors [C, 3]`` and ``bias [3]`` from ``uint8 [N, 28, 28]`` images, and the fit's RMSE."""
    lat, rgb = [], []
    for i in range(0, len(images), batch):
        x = to_model_images(images[i:i + batch])
        z = scale_latents(vae, vae.encode(x).latent_dist.mode())
        lat.append(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))
        pooled = F.adaptive_avg_pool2d(x, z.shape[-2:])
        rgb.append(pooled.permute(0, 2, 3, 1).reshape(-1, 3))
    a = torch.cat(lat).double()
    a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], dim=1)
    y = torch.cat(rgb).double()
    sol = torch.linalg.lstsq(a, y).solution
    rmse = (a @ sol - y).pow(2).mean().sqrt().item()
    return {"factors": [[round(v, 5) for v in row] for row in sol[:-1].tolist()],
            "bias": [round(v, 5) for v in sol[-1].tolist()], "rmse": round(rmse, 4),
            "fitted_on": f"{len(images)} held-out Fashion-MNIST images"}


def write_preview(model: Path, data: Path, count: int = HELD_OUT) -> Path:
    """Fit on ``count`` held-out images and write ``preview_factors.json`` into the model folder."""
    from diffusers import AutoencoderKL

    if not (model / "vae" / "config.json").is_file():
        raise UserError(f"--model {model} has no vae/: pass the tiny model's diffusers folder.")
    vae = AutoencoderKL.from_pretrained(model / "vae", torch_dtype=torch.float32, use_safetensors=True).eval()
    _, held = load_fashion(data).split(HELD_OUT)
    result = fit_preview(vae, held.images[:count])
    return write_bytes(model / FILENAME, (json.dumps(result, indent=1) + "\n").encode())


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description="Fit the latent -> RGB preview factors of the tiny model's VAE.")
    p.add_argument("--model", type=Path, default=Path("assets/tiny-sd"))
    p.add_argument("--data", type=Path, required=True, help="folder with Fashion-MNIST's IDX files")
    p.add_argument("--count", type=int, default=HELD_OUT, help="held-out images to fit on")
    args = p.parse_args(argv)
    path = write_preview(args.model, args.data, args.count)
    print(path.read_text())


if __name__ == "__main__":
    run_main(main)
