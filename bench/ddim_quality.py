"""Why does 50-step DDIM score lower than 1000-step DDPM on the shipped Fashion model? (issue 24, item 4)

    python bench/ddim_quality.py --json OUT.json [--per-class 100] [--seeds 0,1] [--device cuda]

Samples every class with the shipped weights through the app's own samplers (``generate_from_class``:
DDPM at 1000 steps, DDIM at fewer) and through a written-out DDIM loop whose choices can be varied one at a
time, then scores every batch with the project's classifier (``assets/fashion/classifier.safetensors``):

- timestep spacing: ``leading`` (0, 20, ..., 980: diffusers' default, what the app uses) or ``trailing``
  (999, 979, ..., 19: "Common Diffusion Noise Schedules and Sample Steps are Flawed", Lin et al. 2024, table 2),
  which starts at the noise level the model was trained to start from;
- x0 clipping: none, clip, or clip and then recompute eps from the clipped x0 (as diffusers' DDIMScheduler
  does when ``clip_sample`` is on: "pred_epsilon = (sample - alpha_prod_t ** 0.5 * pred_original_sample) /
  beta_prod_t ** 0.5"), so the step stays on one DDIM trajectory (DDIM paper, eq. 12);
- eta (DDIM eq. 16): 0 deterministic, 1 as stochastic as DDPM's posterior.

Each variant's result is written to the JSON file as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sd_explorer.core.fashion import load_shipped
from sd_explorer.core.fashion.classifier import class_fidelity, classify
from sd_explorer.core.fashion.model import alphas_cumprod
from sd_explorer.core.fashion.monitor import classifier
from sd_explorer.core.fashion.sampler import generate_from_class


def timesteps(spacing: str, steps: int, T: int = 1000) -> list[int]:
    if spacing == "leading":
        return [i * (T // steps) for i in range(steps)][::-1]
    if spacing == "trailing":
        return [round(T - i * T / steps) - 1 for i in range(steps)]
    raise ValueError(spacing)


@torch.no_grad()
def ddim(model, labels: torch.Tensor, steps: int, seed: int, spacing: str, clip: str, eta: float) -> torch.Tensor:
    unet, cfg = model.unet, model.config
    dev = next(unet.parameters()).device
    dtype = next(unet.parameters()).dtype
    abar = alphas_cumprod(cfg).to(dev, torch.float64)
    ts = timesteps(spacing, steps, cfg.num_train_timesteps)
    gen = torch.Generator(device=dev).manual_seed(seed)
    size = cfg.sample_size
    x = torch.randn((len(labels), 1, size, size), generator=gen, device=dev)
    for j, t in enumerate(ts):
        prev = ts[j + 1] if j + 1 < len(ts) else -1
        ab, ab_prev = float(abar[t]), (float(abar[prev]) if prev >= 0 else 1.0)
        eps = unet(x.to(dtype), torch.full((len(labels),), t, device=dev), class_labels=labels).sample.float()
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab ** 0.5
        if clip != "none":
            x0 = x0.clamp(-1, 1)
        if clip == "clip+eps":
            eps = (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5
        x = ab_prev ** 0.5 * x0 + max(0.0, 1 - ab_prev - sigma ** 2) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=gen, device=dev)
    return ((x.clamp(-1, 1) + 1) / 2).float().cpu()


VARIANTS = [  # (name, steps, spacing, clip, eta); spacing None: the app's own sampler
    ("app DDPM 1000", 1000, None, None, None),
    ("app DDIM 50", 50, None, None, None),
    ("DDIM 50 leading clip (= app)", 50, "leading", "clip", 0.0),
    ("DDIM 50 leading none", 50, "leading", "none", 0.0),
    ("DDIM 50 leading clip+eps", 50, "leading", "clip+eps", 0.0),
    ("DDIM 50 trailing clip", 50, "trailing", "clip", 0.0),
    ("DDIM 50 trailing none", 50, "trailing", "none", 0.0),
    ("DDIM 50 trailing clip+eps", 50, "trailing", "clip+eps", 0.0),
    ("DDIM 50 trailing clip+eps eta 0.5", 50, "trailing", "clip+eps", 0.5),
    ("DDIM 50 trailing clip+eps eta 1", 50, "trailing", "clip+eps", 1.0),
    ("DDIM 100 trailing clip+eps", 100, "trailing", "clip+eps", 0.0),
    ("DDIM 25 trailing clip+eps", 25, "trailing", "clip+eps", 0.0),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--only", default="", help="comma-separated variant numbers (0-based) to run")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    model = load_shipped(device=args.device)
    judge = classifier(args.device)
    labels = torch.arange(10, device=args.device).repeat_interleave(args.per_class)
    wanted = labels.cpu()
    only = {int(i) for i in args.only.split(",") if i}
    out = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "torch": torch.__version__,
           "per_class": args.per_class, "seeds": seeds, "date": time.strftime("%Y-%m-%d"), "variants": []}
    for k, (name, steps, spacing, clip, eta) in enumerate(VARIANTS):
        if only and k not in only:
            continue
        scores, t0 = [], time.perf_counter()
        for seed in seeds:
            if spacing is None:
                images = generate_from_class(model, list(range(10)), n=args.per_class, steps=steps, seed=seed)
            else:
                images = ddim(model, labels, steps, seed, spacing, clip, eta)
            got = classify(images.to(args.device), judge, value_range="0..1").cpu()
            report = class_fidelity(wanted, got)
            scores.append({"seed": seed, "overall": round(report.overall, 4),
                           "per_class": [round(v, 3) for v in report.per_class]})
        mean = sum(s["overall"] for s in scores) / len(scores)
        out["variants"].append({"name": name, "steps": steps, "spacing": spacing, "clip": clip, "eta": eta,
                                "mean": round(mean, 4), "scores": scores,
                                "seconds": round(time.perf_counter() - t0, 1)})
        print(f"{name:40s} {mean:.3f}  {[s['overall'] for s in scores]}", flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
