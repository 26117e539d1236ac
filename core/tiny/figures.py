"""The tiny model card's figures: the chapter's sweep, samples of every class, the VAE's round trip and
where the words go (heat maps over one- and two-garment images).

``draw(model, data, out, device)`` writes ``FIGURES`` into ``out``; ``core.tiny.card`` measures the
numbers. The figures come from fixed seeds, so they can be redrawn on any machine from the same weights
(``python -m sd_explorer.core.tiny.card --figures-only``) while the numbers come from one measuring run.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..atomic import write_bytes
from ..attention import normalise, overlay
from ..clip_vocab import clip_tokenizer
from ..models import load_model
from ..vae import to_pixel_range
from . import captions, placement
from .data import HELD_OUT, load_fashion, to_model_images

SWEEP_SCALES = (1.0, 2.0, 4.0, 12.0)
SWEEP_PROMPTS = ("a photo of a sneaker", "an ankle boot", "product shot of a dress", "a photo of trousers",
                 "a handbag")
STEPS = 25
FIGURES = ("sweep.png", "classes.png", "vae.png", "heat.png")
HEAT_PROMPTS = ("a photo of a bag on the left and a sneaker on the right", "a sandal next to a dress",
                "a studio picture of an ankle boot")


def load_pipeline(folder: Path | str, device: str):
    """``StableDiffusionPipeline`` from the folder with the project's CLIP tokenizer, fp32."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(folder), tokenizer=clip_tokenizer(),
                                                   torch_dtype=torch.float32, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@torch.no_grad()
def generate(pipe, prompts: list[str], scale: float, seed: int, steps: int = STEPS,
             batch: int = 500) -> torch.Tensor:
    """Images ``[N, 3, 64, 64]`` in [0, 1] (CPU) for ``prompts`` at one guidance scale."""
    out = []
    for i in range(0, len(prompts), batch):
        gen = torch.Generator(pipe.device).manual_seed(seed + i)
        res = pipe(prompts[i:i + batch], guidance_scale=scale, num_inference_steps=steps,
                   generator=gen, output_type="pt")
        out.append(res.images.float().cpu())
    return torch.cat(out)


def _to_pil(images: torch.Tensor, zoom: int = 2) -> list[Image.Image]:
    arr = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a).resize((a.shape[1] * zoom, a.shape[0] * zoom), Image.NEAREST) for a in arr]


def grid(cells: list[Image.Image], cols: int, row_labels: list[str], col_labels: list[str]) -> Image.Image:
    """A labelled grid (row labels on the left, column labels on top)."""
    w, h = cells[0].size
    left, top = 190, 18
    rows = math.ceil(len(cells) / cols)
    canvas = Image.new("RGB", (left + cols * (w + 2), top + rows * (h + 2)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(col_labels):
        draw.text((left + c * (w + 2) + 4, 3), text, fill="black")
    for r, text in enumerate(row_labels):
        draw.text((4, top + r * (h + 2) + h // 2 - 6), text, fill="black")
    for i, cell in enumerate(cells):
        canvas.paste(cell, (left + (i % cols) * (w + 2), top + (i // cols) * (h + 2)))
    return canvas


def sweep_grid(pipe, prompts=SWEEP_PROMPTS, scales=SWEEP_SCALES, seed: int = 0, steps: int = STEPS) -> Image.Image:
    """The chapter's sweep: each prompt at each scale from the same starting noise (seed)."""
    cells = []
    for prompt in prompts:
        for scale in scales:
            cells += _to_pil(generate(pipe, [prompt], scale, seed, steps))
    return grid(cells, len(scales), list(prompts), [f"guidance {s:g}" for s in scales])


def classes_grid(pipe, scale: float = 4.0, per_class: int = 8, seed: int = 0, steps: int = STEPS) -> Image.Image:
    """``per_class`` samples of every class prompt at one guidance scale."""
    prompts = [p for p in captions.PROMPTS for _ in range(per_class)]
    cells = _to_pil(generate(pipe, prompts, scale, seed, steps))
    return grid(cells, per_class, list(captions.PROMPTS), [f"guidance {scale:g}"])


@torch.no_grad()
def vae_grid(vae, images: np.ndarray, device: str) -> Image.Image:
    """Held-out originals, their round trips, and the 4 latent channels of each (normalised)."""
    x = to_model_images(images).to(device)
    z = vae.encode(x).latent_dist.mode()
    recon = vae.decode(z).sample.clamp(-1, 1)
    cells = _to_pil(to_pixel_range(x)) + _to_pil(to_pixel_range(recon))
    for c in range(z.shape[1]):
        ch = z[:, c:c + 1]
        lo, hi = ch.amin(dim=(1, 2, 3), keepdim=True), ch.amax(dim=(1, 2, 3), keepdim=True)
        cells += _to_pil(((ch - lo) / (hi - lo + 1e-8)).expand(-1, 3, -1, -1), zoom=16)
    return grid(cells, len(images), ["original 3x64x64", "round trip"] + [f"latent ch {c} (8x8)" for c in range(4)],
                [""])


def heat_grid(model_folder: Path, device: str, seed: int = placement.SEED, steps: int = STEPS) -> Image.Image:
    """Per ``HEAT_PROMPTS`` prompt: the image and each garment word's heat map over it (own scale per word)."""

    model = load_model(str(model_folder), device=device, dtype="fp32", fast=False)
    cells, labels = [], []
    blank = None
    for prompt in HEAT_PROMPTS:
        pair = next(((a, b) for p, a, b in captions.PAIR_PROMPTS if p == prompt), None)
        classes = pair or (next(c for c, ph in enumerate(captions.PHRASES) if ph[0] in prompt),)
        images, maps = placement._run(model, prompt, 1, seed, steps, placement.SCALE, placement.PAIR_SIZE if pair else None)
        image = _to_pil(to_pixel_range(images))[0]
        row = [image]
        for cls in classes:
            heat, _, _ = normalise(placement._word_heat(model, prompt, maps, cls))
            row.append(overlay(image, heat[0]))
        blank = blank or Image.new("RGB", (placement.PAIR_SIZE[0] * 2, placement.PAIR_SIZE[1] * 2), "white")
        row += [blank] * (3 - len(row))
        cells += [c if c.size == blank.size else _pad(c, blank.size) for c in row]
        labels.append(prompt if len(prompt) < 30 else prompt[:28] + "...")
    words = "image | heat of the left (or only) garment's word | of the right garment's word"
    return grid(cells, 3, labels, [words])


def _pad(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    canvas = Image.new("RGB", size, "white")
    canvas.paste(image, (0, 0))
    return canvas


def _save_png(image: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    write_bytes(path, buf.getvalue())


def draw(model: Path, data: Path, out: Path, device: str, seed: int = 0, steps: int = STEPS,
         per_class: int = 8) -> None:
    """Write ``FIGURES`` for the model folder into ``out`` (each atomically)."""
    _, held = load_fashion(data).split(HELD_OUT)
    pipe = load_pipeline(model, device)
    out.mkdir(parents=True, exist_ok=True)
    _save_png(sweep_grid(pipe, seed=seed, steps=steps), out / "sweep.png")
    _save_png(classes_grid(pipe, seed=seed, steps=steps, per_class=per_class), out / "classes.png")
    _save_png(vae_grid(pipe.vae, held.images[:8], device), out / "vae.png")
    _save_png(heat_grid(model, device, steps=steps), out / "heat.png")
