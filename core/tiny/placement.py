"""Do the tiny model's words pick places? Two-garment images and heat maps on held-out prompts and seeds.

    python -m sd_explorer.core.tiny.placement --model assets/tiny-sd --data ../shared/data/fashion-mnist-8k

Runs the project's own sampler and heat-map recorder (``core.sampler``, ``core.attention``), so it
measures what a user of ``sd-explorer attention`` sees:

- ``pairs``: every ``captions.PAIR_PROMPTS`` prompt (never a training caption) at 128x64: the share of
  images whose left half the classifier assigns to the left garment and right half to the right one
  (both halves right), and per garment word the ratio of its mean heat on its own half to the other
  half's (target >= 2).
- ``objects``: ``a studio picture of ...`` for every class at 64x64 (a template never trained on): per
  word the ratio of its mean heat on the garment (the decoded image's bright pixels at the latent
  grid) to its mean heat off it (target >= 1.5).

Ratios are of the heat averaged over the samples; seeds start at ``SEED`` (the card's own run and the
training never use them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..attention import heat_of, recording, token_positions
from ..errors import UserError, run_main
from ..models import load_model
from ..sampler import generate
from ..settings import SampleSettings
from . import captions
from .data import HELD_OUT, load_fashion, to_fashion
from .judge import load_judge

SEED = 1000
SCALE = 4.0
STEPS = 25
PAIR_SIZE = (128, 64)
OBJECT_TEMPLATE = "a studio picture of {}"
OBJECT_THRESHOLD = 0.15  #: brightness (0-1) above which a latent-grid cell of the decoded image is garment
HALF_TARGET, OBJECT_TARGET = 2.0, 1.5


def _images(result) -> torch.Tensor:
    """The run's PIL images as ``[N, 3, H, W]`` in [-1, 1]."""
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in result.images]) / 127.5 - 1
    return torch.from_numpy(arr).permute(0, 3, 1, 2)


def _run(model, prompt: str, samples: int, seed: int, steps: int, scale: float, size):

    settings = SampleSettings(prompt, steps=steps, guidance_scale=scale, seed=seed,
                              width=size[0] if size else None, height=size[1] if size else None)
    settings.validate(model.vae_scale_factor)
    with recording(model, settings, samples) as rec:
        result = generate(model, settings, samples)
    return _images(result), rec.maps()


def _word_heat(model, prompt: str, maps: torch.Tensor, cls: int) -> np.ndarray:

    return heat_of(maps, token_positions(model, prompt, captions.HEAT_WORDS[cls]))  # [N, h, w]


def half_ratio(heat: np.ndarray, own_left: bool) -> float:
    """A ``[h, w]`` map's mean heat on its own half (the left one if ``own_left``) over the other half's."""
    w = heat.shape[-1] // 2
    on_left, on_right = float(heat[:, :w].mean()), float(heat[:, w:].mean())
    own, other = (on_left, on_right) if own_left else (on_right, on_left)
    return own / max(other, 1e-12)


def measure_pairs(model, judge, samples: int, seed: int = SEED, steps: int = STEPS, scale: float = SCALE) -> dict:
    """Per held-out pair prompt: both halves classified right, and each word's own-half heat ratio."""
    rows = []
    for k, (prompt, left, right) in enumerate(captions.PAIR_PROMPTS):
        images, maps = _run(model, prompt, samples, seed + k, steps, scale, PAIR_SIZE)
        half = images.shape[-1] // 2
        pred_l = judge.predict(to_fashion(images[..., :half]))
        pred_r = judge.predict(to_fashion(images[..., half:]))
        both = ((pred_l == left) & (pred_r == right)).float().mean().item()
        ratios = [round(half_ratio(_word_heat(model, prompt, maps, cls).mean(0), own_left), 3)  # over the samples
                  for cls, own_left in ((left, True), (right, False))]
        rows.append({"prompt": prompt, "left": left, "right": right, "both_halves": round(both, 4),
                     "left_correct": round((pred_l == left).float().mean().item(), 4),
                     "right_correct": round((pred_r == right).float().mean().item(), 4),
                     "half_ratio": ratios})
    all_ratios = [r for row in rows for r in row["half_ratio"]]
    return {"samples": samples, "seed": seed, "steps": steps, "scale": scale, "size": list(PAIR_SIZE),
            "prompts": rows, "both_halves": round(float(np.mean([r["both_halves"] for r in rows])), 4),
            "half_ratio_min": min(all_ratios), "half_ratio_median": round(float(np.median(all_ratios)), 3),
            "half_ratio_pass": round(float(np.mean([r >= HALF_TARGET for r in all_ratios])), 4)}


def object_mask(images: torch.Tensor, grid: tuple[int, int], threshold: float = OBJECT_THRESHOLD) -> np.ndarray:
    """``[N, 3, H, W]`` in [-1, 1] -> ``[N, h, w]`` bool: cells of the latent grid whose mean brightness
    (0-1) is above ``threshold``: where the garment is."""
    gray = (images.mean(1, keepdim=True) + 1) / 2
    return (torch.nn.functional.adaptive_avg_pool2d(gray, grid)[:, 0] > threshold).numpy()


def measure_objects(model, samples: int, seed: int = SEED + 100, steps: int = STEPS, scale: float = SCALE) -> dict:
    """Per class: a held-out single-garment prompt's word heat on the garment vs off it (64x64)."""
    rows = []
    for cls, phrases in enumerate(captions.PHRASES):
        prompt = OBJECT_TEMPLATE.format(phrases[0])
        images, maps = _run(model, prompt, samples, seed + cls, steps, scale, None)
        heat = _word_heat(model, prompt, maps, cls)  # [N, h, w]
        mask = object_mask(images, heat.shape[-2:])
        on = [heat[i][mask[i]].mean() for i in range(len(heat)) if mask[i].any() and (~mask[i]).any()]
        off = [heat[i][~mask[i]].mean() for i in range(len(heat)) if mask[i].any() and (~mask[i]).any()]
        ratio = float(np.mean(on) / max(np.mean(off), 1e-12)) if on else float("nan")
        rows.append({"prompt": prompt, "word": captions.HEAT_WORDS[cls], "object_ratio": round(ratio, 3),
                     "object_cells": round(float(mask.mean()), 3)})
    ratios = [r["object_ratio"] for r in rows]
    return {"samples": samples, "seed": seed, "steps": steps, "scale": scale, "prompts": rows,
            "object_ratio_min": min(ratios), "object_ratio_median": round(float(np.median(ratios)), 3),
            "object_ratio_pass": round(float(np.mean([r >= OBJECT_TARGET for r in ratios])), 4)}


def measure(model_folder: Path, judge, samples: int, device: str = "cpu", seed: int = SEED,
            steps: int = STEPS) -> dict:
    """Both measurements on the model in ``model_folder`` (fp32, eager: the maps as recorded)."""

    model = load_model(str(model_folder), device=device, dtype="fp32", fast=False)
    return {"pairs": measure_pairs(model, judge, samples, seed, steps),
            "objects": measure_objects(model, samples, seed + 100, steps)}


def main(argv: list[str] | None = None) -> None:
    """CLI: print the measurements as JSON."""
    p = argparse.ArgumentParser(description="Measure where the tiny model's words put their heat.")
    p.add_argument("--model", type=Path, default=Path("assets/tiny-sd"))
    p.add_argument("--data", type=Path, required=True, help="folder with Fashion-MNIST's IDX files")
    p.add_argument("--samples", type=int, default=8, help="images per prompt")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--device", default="cpu")
    p.add_argument("--judge", choices=("auto", "fashion", "own"), default="own")
    p.add_argument("--judge-steps", type=int, default=1500)
    args = p.parse_args(argv)
    if args.samples < 1:
        raise UserError("--samples must be at least 1.")

    train, _ = load_fashion(args.data).split(HELD_OUT)
    judge = load_judge(train, args.device, args.judge_steps, args.judge)
    print(json.dumps(measure(args.model, judge, args.samples, args.device, args.seed), indent=1))


if __name__ == "__main__":
    run_main(main)
