"""Measure the tiny model and write its model card (``MODEL_CARD.md``, ``card.json``, PNG grids).

    python -m sd_explorer.core.tiny.card --model assets/tiny-sd --data ../shared/data/fashion-mnist-8k --out DIR

Every number in the card comes from this script: prompt following (the share of generated images a
Fashion-MNIST classifier assigns to the prompted class, at guidance 1, 2, 4, 8), the VAE's
round-trip PSNR on the held-out images, the compression computed from the tensors, sizes and
parameter counts. Grids: the chapter's guidance sweep (1, 2, 4, 12) for a few prompts, one sample
row per class, and VAE round trips.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_bytes
from ..errors import UserError, run_main
from ..fashion.data import CLASS_NAMES
from ..vae import scale_latents, to_vae_range
from . import build, captions, figures, placement
from .data import HELD_OUT, load_fashion, to_fashion, to_model_images
from .figures import STEPS, generate, load_pipeline
from .judge import fashion_batch, load_judge

SCALES = (1.0, 2.0, 4.0, 8.0)
OUTPUTS = ("MODEL_CARD.md", "card.json") + figures.FIGURES


def prompt_following(pipe, judge, samples: int, scales=SCALES, seed: int = 0, steps: int = STEPS) -> dict:
    """Per scale: the share of images for each class prompt that the judge assigns to that class."""
    prompts = [p for p in captions.PROMPTS for _ in range(samples)]
    target = torch.arange(len(captions.PROMPTS)).repeat_interleave(samples)
    result = {}
    for scale in scales:
        images = generate(pipe, prompts, scale, seed, steps)
        pred = judge.predict(to_fashion(to_vae_range(images)))
        hit = (pred == target).float()
        per_class = hit.view(len(captions.PROMPTS), samples).mean(1)
        result[f"{scale:g}"] = {"overall": round(hit.mean().item(), 4),
                                "per_class": [round(v, 4) for v in per_class.tolist()]}
    return result


@torch.no_grad()
def vae_report(vae, images: np.ndarray, device: str, seed: int = 0) -> dict:
    """Round-trip PSNR (in [0, 1], peak 1) on held-out images, and compression from the tensors."""
    gen = torch.Generator(device).manual_seed(seed)
    per_image, lat_all = [], []
    for i in range(0, len(images), 256):
        x = to_model_images(images[i:i + 256]).to(device)
        dist = vae.encode(x).latent_dist
        z = dist.sample(generator=gen)
        lat_all.append(scale_latents(vae, z).cpu())
        recon = vae.decode(z).sample.clamp(-1, 1)
        mse = ((recon - x) / 2).pow(2).flatten(1).mean(1)
        per_image.append(10 * torch.log10(1 / mse.clamp_min(1e-10)).cpu())
    psnr = torch.cat(per_image)
    lat = torch.cat(lat_all)
    x0 = to_model_images(images[:1])
    return {
        "held_out_images": len(images),
        "psnr_mean_db": round(psnr.mean().item(), 2),
        "psnr_median_db": round(psnr.median().item(), 2),
        "psnr_p05_db": round(psnr.quantile(0.05).item(), 2),
        "image_shape": list(x0.shape[1:]), "latent_shape": list(lat.shape[1:]),
        "image_values": int(x0[0].numel()), "latent_values": int(lat[0].numel()),
        "ratio": round(x0[0].numel() / lat[0].numel(), 2),
        "scaled_latent_std": round(lat.std().item(), 4),
        "scaling_factor": float(vae.config.scaling_factor),
    }


def _continued(settings: dict) -> bool:
    return settings.get("init", "None") not in ("None", "")


def training_command(training: dict) -> str:
    """The exact training command, rebuilt from the settings ``core.tiny.train`` recorded."""
    settings = training.get("settings", {})
    skip = {"out", "overwrite", "data", "device"}
    if _continued(settings):  # the VAE came with --init: its settings did nothing
        skip |= {k for k in settings if k.startswith("vae_") or k == "kl_weight"}
    parts = [f"--{k.replace('_', '-')} {v}" for k, v in sorted(settings.items())
             if k not in skip and v not in ("inf", "None") and not (k == "limit" and v == "0")]
    return "python -m sd_explorer.core.tiny.train --data DATA --out OUT " + " ".join(parts)


def _training_line(t: dict) -> str:
    if not t:
        return "- Training: no `training.json` in the folder."
    done, s = t.get("steps_done", {}), t.get("settings", {})
    if _continued(s):
        return (f"- Training: `{training_command(t)}` on {t.get('device', '?')}: continued from `{s['init']}` "
                f"(its VAE kept as it was), text encoder + UNet {done.get('unet', '?')} more steps in "
                f"{t.get('unet_seconds', '?')} s.")
    stopped = [f"{name} stopped at step {done[name]} of its {s.get(f'{name}_steps')}-step schedule"
               for name in ("vae", "unet") if name in done and str(done[name]) != s.get(f"{name}_steps")]
    return (f"- Training: `{training_command(t)}` on {t.get('device', '?')}: VAE {done.get('vae', '?')} steps in "
            f"{t.get('vae_seconds', '?')} s, text encoder + UNet {done.get('unet', '?')} steps in "
            f"{t.get('unet_seconds', '?')} s" + (f" ({'; '.join(stopped)})." if stopped else "."))


def _placement_lines(place: dict | None) -> list[str]:
    """The "Where words go" section (``core.tiny.placement``'s numbers), or nothing for an older card."""
    if not place:
        return []
    pairs, objects = place["pairs"], place["objects"]
    rows = ["| held-out prompt (128x64) | both halves right | heat on own half / other half |", "|---|---|---|"]
    for r in pairs["prompts"]:
        rows.append(f"| {r['prompt']} | {r['both_halves']:.0%} | " + " / ".join(f"{v:.2f}x" for v in r["half_ratio"]) + " |")
    obj = ", ".join(f"{r['word']} {r['object_ratio']:.2f}x" for r in objects["prompts"])
    return [
        "## Where words go",
        "",
        f"Held-out prompts (never a training caption), {pairs['samples']} images each from seeds {pairs['seed']}+, "
        f"guidance {pairs['scale']:g}, {pairs['steps']} steps, measured by `python -m sd_explorer.core.tiny.placement`"
        " through the app's own sampler and heat-map recorder. A two-garment image is right when the classifier"
        " assigns its left half to the left garment and its right half to the right one; a word's heat is its"
        " cross-attention summed over heads, layers and steps, averaged over the images.",
        "",
        *rows,
        f"| **all** | **{pairs['both_halves']:.1%}** | min {pairs['half_ratio_min']:.2f}x, median "
        f"{pairs['half_ratio_median']:.2f}x, {pairs['half_ratio_pass']:.0%} >= 2x |",
        "",
        f"Single garments at 64x64 (`{placement.OBJECT_TEMPLATE.format('...')}`, a template never trained on, "
        f"seeds {objects['seed']}+): the word's mean heat on the garment (the decoded image's cells brighter than "
        f"{placement.OBJECT_THRESHOLD:g}) over its mean heat off it: {obj}; median {objects['object_ratio_median']:.2f}x, "
        f"{objects['object_ratio_pass']:.0%} >= 1.5x.",
        "",
    ]


def render_markdown(card: dict) -> str:
    """The model card text, from the measured numbers."""
    pf, vae, size = card["prompt_following"], card["vae"], card["size"]
    scales = list(pf)
    head = "| prompt | " + " | ".join(f"g={s}" for s in scales) + " |"
    rows = [head, "|" + "---|" * (len(scales) + 1)]
    for k, prompt in enumerate(captions.PROMPTS):
        rows.append(f"| {prompt} ({CLASS_NAMES[k]}) | " + " | ".join(f"{pf[s]['per_class'][k]:.0%}" for s in scales) + " |")
    rows.append("| **all classes** | " + " | ".join(f"**{pf[s]['overall']:.1%}**" for s in scales) + " |")
    t = card.get("training", {})
    cross = card.get("cross_check")
    cross_lines = [
        "",
        f"Cross-check with {cross['judge']} (accuracy on the held-out real images: {cross['judge_accuracy']:.1%}),"
        f" {cross['samples']} images per prompt per scale, seed {cross['seed']}, {cross['device']}: "
        + ", ".join(f"g={k}: {v['overall']:.0%}" for k, v in cross["prompt_following"].items()) + ".",
    ] if cross else []
    lines = [
        "# tiny-sd: a tiny Stable Diffusion trained on captioned Fashion-MNIST",
        "",
        "The embedded default model of sd-explorer: the same component types as Stable Diffusion 1.x",
        "(CLIP tokenizer and `CLIPTextModel`, `AutoencoderKL` with 4 latent channels and /8 downsampling,",
        "`UNet2DConditionModel` with cross-attention, `PNDMScheduler` with SD 1.x's betas), trained by",
        "`core.tiny.train` on the first 7,168 of 8,192 Fashion-MNIST training images with captions naming",
        "the class (10 templates x 3-4 phrases per class) and 10% empty captions for classifier-free guidance.",
        "All numbers below are written by `python -m sd_explorer.core.tiny.card`; do not edit them by hand.",
        "",
        "## Components",
        "",
        f"- Parameters: text encoder {size['parameters']['text_encoder']:,}, VAE {size['parameters']['vae']:,}, "
        f"UNet {size['parameters']['unet']:,}.",
        f"- Weights on disk (fp16 safetensors): {size['weight_bytes'] / 1e6:.1f} MB.",
        _training_line(t),
        "- Reproduce: `python -m sd_explorer.core.tiny.train --data ../shared/data/fashion-mnist-8k --out OUT` (its defaults are"
        " this recipe, with `--vae-stop-at`/`--unet-stop-at` at the steps where the time caps stopped it), then"
        " `python -m sd_explorer.core.tiny.card --model OUT --data ../shared/data/fashion-mnist-8k --out OUT`.",
        "",
        "## Prompt following",
        "",
        f"{card['samples']} images per prompt per scale, {card['steps']} steps of the shipped scheduler, seed "
        f"{card['seed']}; the share the classifier assigns to the prompted class. Classifier: {card['judge']}"
        f" (accuracy on the {vae['held_out_images']} held-out real images: {card['judge_accuracy']:.1%}).",
        "Guidance 1 is the text-conditioned prediction alone (diffusers skips the unconditional pass).",
        "",
        *rows,
        *cross_lines,
        "",
        *_placement_lines(card.get("placement")),
        "## VAE",
        "",
        f"- Round trip (encode, sample the latent, decode) on the {vae['held_out_images']} held-out images: "
        f"PSNR mean {vae['psnr_mean_db']} dB, median {vae['psnr_median_db']} dB, 5th percentile {vae['psnr_p05_db']} dB.",
        f"- Compression: image {'x'.join(map(str, vae['image_shape']))} = {vae['image_values']:,} values -> latent "
        f"{'x'.join(map(str, vae['latent_shape']))} = {vae['latent_values']:,} values: {vae['ratio']:g}x "
        "(SD: 3x512x512 -> 4x64x64, 48x).",
        f"- `scaling_factor` {vae['scaling_factor']:.5f} (1 / std of the training latents, as SD's 0.18215 was); "
        f"held-out scaled latents have std {vae['scaled_latent_std']}.",
        "",
        "## Images",
        "",
        "- `sweep.png`: the chapter's guidance sweep (1, 2, 4, 12), same seed per row.",
        f"- `classes.png`: {card.get('per_class', 8)} samples per class prompt at guidance 4.",
        "- `vae.png`: held-out images, their round trips, and the 4 latent channels.",
        *(["- `heat.png`: two held-out two-garment prompts at 128x64 and one single garment, each garment word's "
            "heat map."] if card.get("placement") else []),
        "- `preview_factors.json`: latent -> RGB factors for the step previews, fitted by `python -m sd_explorer.core.tiny.preview`.",
        "",
        "## Limits",
        "",
        "Trained only on Fashion-MNIST: 64x64 grayscale clothing on black. Words outside the captions' vocabulary",
        "map to untrained token embeddings, so prompts about anything else give arbitrary clothing.",
        "",
    ]
    return "\n".join(lines)


def make_card(model: Path, data: Path, out: Path, samples: int, device: str, judge_steps: int,
              prefer: str = "auto", seed: int = 0, overwrite: bool = False, steps: int = STEPS,
              eval_images: int = HELD_OUT, per_class: int = 8, place_samples: int = 8) -> dict:
    """Measure everything and write ``OUTPUTS`` into ``out``; returns the numbers.

    ``steps``, ``eval_images`` (held-out images for PSNR and the judge's accuracy) and ``per_class``
    (columns of ``classes.png``) and ``place_samples`` (images per prompt of ``core.tiny.placement``)
    only shrink for quick checks; the shipped card uses the defaults.
    """
    out.mkdir(parents=True, exist_ok=True)
    clash = [n for n in OUTPUTS if (out / n).exists()]
    if clash and not overwrite:
        raise UserError(f"{out} already has {', '.join(clash)}: choose another --out or pass --overwrite.")
    train, held = load_fashion(data).split(HELD_OUT)
    held.images, held.labels = held.images[:eval_images], held.labels[:eval_images]
    judge = load_judge(train, device, judge_steps, prefer)
    real = judge.predict(fashion_batch(held.images))
    accuracy = (real.cpu() == held.labels).float().mean().item()
    pipe = load_pipeline(model, device)
    t0 = time.perf_counter()
    following = prompt_following(pipe, judge, samples, seed=seed, steps=steps)
    training_file = Path(model) / "training.json"
    training = json.loads(training_file.read_text()) if training_file.is_file() else {}
    training.pop("log", None)
    card = {
        "samples": samples, "steps": steps, "per_class": per_class, "seed": seed, "judge": judge.source,
        "judge_accuracy": round(accuracy, 4), "prompt_following": following,
        "vae": vae_report(pipe.vae, held.images, device, seed),
        "size": {"parameters": {n: sum(p.numel() for p in getattr(pipe, n).parameters())
                                for n in ("text_encoder", "vae", "unet")},
                 "weight_bytes": build.folder_bytes(model)},
        "training": training, "measure_seconds": round(time.perf_counter() - t0, 1),
        "placement": placement.measure(model, judge, place_samples, device, steps=steps),
    }
    figures.draw(model, data, out, device, seed, steps, per_class)
    write_bytes(out / "card.json", (json.dumps(card, indent=1) + "\n").encode())
    write_bytes(out / "MODEL_CARD.md", render_markdown(card).encode())
    return card


def rerender(model: Path, out: Path) -> None:
    """Rewrite ``MODEL_CARD.md`` from an existing ``card.json`` (and the model's ``training.json``)."""
    card_file = out / "card.json"
    if not card_file.is_file():
        raise UserError(f"{card_file} is missing: run the card without --render-only first.")
    card = json.loads(card_file.read_text())
    training_file = Path(model) / "training.json"
    if training_file.is_file():
        card["training"] = {k: v for k, v in json.loads(training_file.read_text()).items() if k != "log"}
    write_bytes(out / "MODEL_CARD.md", render_markdown(card).encode())


def cross_check(model: Path, data: Path, out: Path, samples: int, device: str, seed: int = 1) -> dict:
    """Re-measure prompt following with the project's classifier (``core.fashion``) into ``card.json``.

    For a card measured with our own CNN: a second, independent classifier on fresh seeds.
    """
    card_file = out / "card.json"
    if not card_file.is_file():
        raise UserError(f"{card_file} is missing: run the card without --cross-check first.")
    card = json.loads(card_file.read_text())
    train, held = load_fashion(data).split(HELD_OUT)
    judge = load_judge(train, device, 0, prefer="fashion")
    real = judge.predict(fashion_batch(held.images))
    card["cross_check"] = {
        "judge": judge.source, "samples": samples, "seed": seed, "device": device,
        "judge_accuracy": round((real.cpu() == held.labels).float().mean().item(), 4),
        "prompt_following": prompt_following(load_pipeline(model, device), judge, samples, seed=seed),
    }
    write_bytes(card_file, (json.dumps(card, indent=1) + "\n").encode())
    write_bytes(out / "MODEL_CARD.md", render_markdown(card).encode())
    return card["cross_check"]


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description="Measure the tiny model and write its model card.")
    p.add_argument("--model", type=Path, default=Path("assets/tiny-sd"))
    p.add_argument("--data", type=Path, required=True, help="folder with Fashion-MNIST's IDX files")
    p.add_argument("--out", type=Path, required=True, help="folder for MODEL_CARD.md, card.json and PNGs")
    p.add_argument("--samples", type=int, default=50, help="images per class prompt per guidance scale")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--judge", choices=("auto", "fashion", "own"), default="auto")
    p.add_argument("--judge-steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=STEPS, help="sampling steps (the card's default: 25)")
    p.add_argument("--eval-images", type=int, default=HELD_OUT, help="held-out images to measure the VAE on")
    p.add_argument("--per-class", type=int, default=8, help="samples per class in classes.png")
    p.add_argument("--place-samples", type=int, default=8, help="images per prompt for where words go")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--cross-check", action="store_true",
                   help="add prompt following by core.fashion's classifier to an existing card (--samples each)")
    p.add_argument("--figures-only", action="store_true",
                   help="redraw the figures (fixed seeds) and MODEL_CARD.md from --out/card.json, no measuring")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite MODEL_CARD.md from --out/card.json and the model's training.json, no measuring")
    args = p.parse_args(argv)
    if args.render_only or args.figures_only:
        if args.figures_only:
            figures.draw(args.model, args.data, args.out, args.device, args.seed, args.steps, args.per_class)
        rerender(args.model, args.out)
        return
    if args.cross_check:
        print(json.dumps(cross_check(args.model, args.data, args.out, args.samples, args.device)))
        return
    for name in ("samples", "steps", "eval_images", "per_class", "place_samples"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1.")
    if not (Path(args.model) / "model_index.json").is_file():
        raise UserError(f"--model {args.model} has no model_index.json: pass the tiny model's diffusers folder.")
    card = make_card(args.model, args.data, args.out, args.samples, args.device, args.judge_steps,
                     args.judge, args.seed, args.overwrite, args.steps, args.eval_images, args.per_class,
                     args.place_samples)
    print(json.dumps({k: card[k] for k in ("prompt_following", "vae", "judge_accuracy")}), flush=True)


if __name__ == "__main__":
    run_main(main)
