"""Build the tiny model's components (random init or trained) and save them as a diffusers folder.

``python -m sd_explorer.core.tiny.build --out assets/tiny-sd --seed 0 --overwrite`` writes a deterministic
random-init folder: the mechanics work (tokenize, encode, denoise, decode) before any training.

The folder is written next to its destination under a temporary name and moved into place, so a
reader never sees half a model; an existing folder is only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import run_main
from . import configs
from ..atomic import write_folder


@dataclass
class Components:
    """The four trainable/configurable parts of the pipeline (the tokenizer is injected)."""

    text_encoder: Any
    vae: Any
    unet: Any
    scheduler: Any


def build_components(seed: int = 0, scaling_factor: float | None = None) -> Components:
    """Fresh components with the architecture of ``configs``, random weights from ``seed``."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs.TEXT_ENCODER))
    vae_cfg = dict(configs.VAE)
    if scaling_factor is not None:
        vae_cfg["scaling_factor"] = float(scaling_factor)
    vae = AutoencoderKL(**vae_cfg)
    unet = UNet2DConditionModel(**configs.UNET)
    scheduler = PNDMScheduler(**configs.SCHEDULER)
    return Components(text_encoder.eval(), vae.eval(), unet.eval(), scheduler)


def load_components(folder: Path | str) -> Components:
    """The networks of a saved tiny folder in float32 (to train further) and a fresh scheduler."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise UserError(f"--init {folder}: no model_index.json there; pass a tiny model's diffusers folder.")
    kw = dict(torch_dtype=torch.float32, use_safetensors=True)
    text_encoder = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), **kw)
    vae = AutoencoderKL.from_pretrained(str(folder / "vae"), **kw)
    unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), **kw)
    return Components(text_encoder.eval(), vae.eval(), unet.eval(), PNDMScheduler(**configs.SCHEDULER))


def parameter_counts(parts: Components) -> dict[str, int]:
    """Number of parameters per network."""
    return {
        name: sum(p.numel() for p in getattr(parts, name).parameters())
        for name in ("text_encoder", "vae", "unet")
    }


def _write_folder(parts: Components, folder: Path, fp16: bool) -> None:
    import torch

    dtype = torch.float16 if fp16 else torch.float32
    for name in ("text_encoder", "vae", "unet"):
        module = getattr(parts, name)
        original = next(module.parameters()).dtype
        module.to(dtype).save_pretrained(folder / name, safe_serialization=True)
        module.to(original)
    parts.scheduler.save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps(configs.MODEL_INDEX, indent=2) + "\n")


def save_folder(
    parts: Components, out: Path | str, *, fp16: bool = True, overwrite: bool = False,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Save ``parts`` as a diffusers folder at ``out`` (atomically); returns the folder.

    ``extra_files`` maps names to existing files copied into the folder (model card, PNGs).
    """
    def write(staging: Path) -> None:
        _write_folder(parts, staging, fp16)
        for name, src in (extra_files or {}).items():
            shutil.copyfile(src, staging / name)

    return write_folder(out, write, overwrite=overwrite)


def folder_bytes(folder: Path | str) -> int:
    """Total size of the weight files in a saved folder."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors"))


def main(argv: list[str] | None = None) -> None:
    """CLI: write a random-init folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fp32", action="store_true", help="save float32 instead of float16")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    parts = build_components(args.seed)
    folder = save_folder(parts, args.out, fp16=not args.fp32, overwrite=args.overwrite)
    counts = parameter_counts(parts)
    print(json.dumps({"folder": str(folder), "parameters": counts, "bytes": folder_bytes(folder)}))


if __name__ == "__main__":
    run_main(main)
