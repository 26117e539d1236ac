"""The shipped Fashion-MNIST model's card: ``MODEL_CARD.md`` and ``training_curve.png`` from ``training_results.json``.

``training_results.json`` is what the GPU runs measured (``core.fashion.train_shipped``: per-epoch losses,
per-class fidelity of the weights and of their EMA under both samplers, brightness, timings); this module
only renders it, so the card never says more than the runs did::

    python -m sd_explorer.core.fashion.card assets/fashion      # rewrite MODEL_CARD.md and training_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import math

from PIL import Image, ImageDraw

from .data import CLASS_NAMES
from ..atomic import write_replacing

CURVE = "training_curve.png"


#: the DDIM rows were measured with the old deterministic sampler; what the app samples with now (issue 24, item 4)
DDIM_NOTE = (
    "The DDIM rows above are the old deterministic sampler (eta 0, leading spacing). Since 2026-12-03 the app samples",
    "fewer than 1000 steps with eta 1 and trailing spacing: 94.4 % at 50 steps against 93.8 % for DDPM 1000 in the same",
    "run (2,000 images each, `bench/ddim_quality.py`, docs/benchmarks.md).",
)

def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _fidelity_rows(label: str, fid: dict) -> str:
    per = " | ".join(f"{100 * v:.0f}" for v in fid["per_class"])
    bright = f"{fid['mean_brightness']:.3f}" if "mean_brightness" in fid else "—"
    return f"| {label} | **{_pct(fid['overall'])}** | {per} | {min(fid['per_class']) * 100:.0f} % | {bright} |"


def render_markdown(r: dict) -> str:
    """The card's text, every number read from ``r`` (training_results.json)."""
    ship, clf, stages = r["shipped"], r["classifier"], r["stages"]
    head = " | ".join(f"{i} {n.split('/')[0]}" for i, n in enumerate(CLASS_NAMES))
    lines = [
        "# Fashion-MNIST class-conditional DDPM (`ddpm.safetensors`) and its fidelity classifier",
        "",
        "<!-- written by `python -m sd_explorer.core.fashion.card assets/fashion` from training_results.json; do not edit -->",
        "",
        "## DDPM — `ddpm.safetensors` (fp16)",
        "- **Model**: the chapter's `UNet2DModel(in_channels=1, out_channels=1, sample_size=32,",
        "  block_out_channels=(32, 64, 128, 256), num_class_embeds=10)`, 15,892,033 parameters; its configuration",
        "  is JSON in the file's safetensors metadata. Load with `core.fashion.load_shipped()`.",
        "- **Noise schedule**: `DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02)`, epsilon",
        "  target, x0 clipped to [-1, 1] while sampling.",
        f"- **Data**: {r['data']['images']:,} Fashion-MNIST training images (the subset available here, not the",
        "  chapter's 60,000); the chapter's preprocessing (flip, pad to 32x32, [-1, 1]), batched on the GPU.",
        "- **Recipe**: the chapter's (AdamW lr 3e-4, eps 1e-5, batch 256, MSE on the noise, uniform timesteps),",
        "  bf16 autocast, the whole step in a CUDA graph (`core.fashion.trainer.Trainer`), plus an EMA of the",
        "  weights (decay 0.999). **The shipped weights are the EMA.**",
        f"- **Length**: {ship['steps']:,} optimizer steps ({ship['epochs']} epochs of the subset) in "
        f"{len(stages)} stages on one {r['device']} ({r.get('date', '')}, torch {r.get('torch', '')}):",
        "",
        "| stage | start | epochs | steps | final epoch loss | wall time | steady img/s | torch.compile |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in stages:
        lines.append(f"| {s['name']} | {s['start']} | {s['epochs']} | {s['steps']:,} | {s['final_epoch_loss']:.4f} | "
                     f"{s['train_s']:.0f} s | {s['steady_images_per_s']:,.0f} | {'yes' if s['compile'] else 'no'} |")
    lines += [""] + [f"- {s['name']}: {s['note']}." for s in stages]
    lines += [
        "",
        f"![training curve]({CURVE})",
        "",
        "## Class fidelity",
        "Share of generated class-k images that the classifier below labels k: 50 samples per class, seed 0.",
        f"The classifier itself is right on **{_pct(clf['heldout_accuracy'])}** of real held-out images, so a",
        "model at or above that is as recognisable as real data. Mean brightness of real images (padded to",
        f"32x32, as the model sees them): **{r['real_mean_brightness']:.3f}**.",
        "",
        f"| model, sampler | overall | {head} | worst class | mean brightness |",
        "|---|---|" + "---|" * 10 + "---|---|",
    ]
    for s in stages:
        for lab in ("ema", "weights"):
            c = s["candidates"].get(lab)
            if c is None:
                continue
            name = f"{s['name']}, {'EMA' if lab == 'ema' else 'raw weights'}"
            lines.append(_fidelity_rows(f"{name}, DDPM 1000 steps", c["fidelity_ddpm1000"]))
            lines.append(_fidelity_rows(f"{name}, DDIM 50 steps", c["fidelity_ddim50"]))
    d1, d2 = ship["fidelity_ddpm1000"], ship["fidelity_ddim50"]
    lines += [
        "",
        f"**Shipped** ({ship['stage']} stage, {ship['weights'].upper()}): DDPM 1000 steps {_pct(d1['overall'])} "
        f"(worst class {min(d1['per_class']) * 100:.0f} %), DDIM 50 steps {_pct(d2['overall'])} (worst class "
        f"{min(d2['per_class']) * 100:.0f} %, {CLASS_NAMES[d2['per_class'].index(min(d2['per_class']))]}).",
        *DDIM_NOTE,
        "",
        "![samples](samples_grid.png)",
        "",
        "`samples_grid.png`: 10 classes x 8, DDPM 1000 steps, seed 0, the shipped weights.",
        "",
        "## Classifier — `classifier.safetensors` (fp32)",
        "- A small CNN (`core.fashion.classifier.FashionCNN`: two conv blocks of 32/64 channels, a 128-unit head),",
        f"  trained for {clf['epochs']} epochs on the first {clf['train_images']:,} images of the subset.",
        f"- **Held-out accuracy: {_pct(clf['heldout_accuracy'])}** on the last {clf['heldout_images']:,} images; "
        "per class " + " / ".join(f"{100 * a:.0f}" for a in clf["per_class_accuracy"]) + " %.",
        "- `classify(images)` accepts [0, 1] or [-1, 1] floats or uint8, 28x28 or 32x32 (the padding is cropped).",
        "",
        "## Reproduce",
        "On a GPU: `python -m sd_explorer.core.fashion.train_shipped --data DIR --out OUT --classifier",
        "assets/fashion/classifier.safetensors --per-class 50 --ema 0.999 --compile --epochs 25 --extra-epochs 358",
        "--skip-recipe-measure` (one run of 383 epochs; the shipped model was made in the two stages above,",
        "`bench/gpu_session.sh ship` then `ship-more`), then copy `ddpm.safetensors`, `samples_grid.png` and",
        "the measurements into `assets/fashion/training_results.json` and run `python -m sd_explorer.core.fashion.card",
        "assets/fashion`.",
        "",
    ]
    return "\n".join(lines)


def loss_curve(stages: list[dict], size: tuple[int, int] = (640, 240)) -> Image.Image:
    """Mean loss per epoch over all stages (log scale), a vertical line where a stage starts."""
    losses = [v for s in stages for v in s["epoch_losses"] if v == v and v > 0]
    w, h, pad = size[0], size[1], 36
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    lo, hi = math.log(min(losses)), math.log(max(losses))
    span = max(hi - lo, 1e-9)

    def xy(i: int, v: float) -> tuple[float, float]:
        return (pad + (w - 2 * pad) * i / max(len(losses) - 1, 1),
                h - pad - (h - 2 * pad) * (math.log(v) - lo) / span)

    draw.line([xy(i, v) for i, v in enumerate(losses)], fill=(40, 90, 200), width=2)
    start = 0
    for s in stages[:-1]:
        start += len(s["epoch_losses"])
        x = xy(start, losses[0])[0]
        draw.line([(x, pad), (x, h - pad)], fill=(200, 60, 60), width=1)
    draw.rectangle([pad, pad, w - pad, h - pad], outline="black")
    draw.text((pad, 8), "mean training loss per epoch (log scale); red: next stage", fill="black")
    draw.text((pad, h - pad + 6), f"epoch 1 ... {len(losses)}", fill="black")
    draw.text((4, pad), f"{max(losses):.3f}", fill="black")
    draw.text((4, h - pad - 12), f"{min(losses):.3f}", fill="black")
    return img


def write_card(folder: str | Path) -> Path:
    """Rewrite ``MODEL_CARD.md`` and ``training_curve.png`` in ``folder`` from its ``training_results.json``."""
    folder = Path(folder)
    results = json.loads((folder / "training_results.json").read_text())
    write_replacing(folder / CURVE, lambda tmp: loss_curve(results["stages"]).save(tmp, format="PNG"))
    return write_replacing(folder / "MODEL_CARD.md", lambda tmp: tmp.write_text(render_markdown(results)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[2] / "assets" / "fashion"))
    print(write_card(ap.parse_args(argv).folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
