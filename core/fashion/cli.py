"""``sd-explorer fashion train|sample``: argparse wiring for the Fashion-MNIST DDPM.

The lead's ``core/cli.py`` calls ``add_parser(subparsers)``; each handler takes the parsed args and
returns an exit code. ``UserError`` propagates to the top-level CLI (exit 2, one line).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from core.errors import UserError
from core.fields import COMPILE_MODES


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``fashion`` with ``train`` and ``sample`` on an argparse subparsers object."""
    fashion = subparsers.add_parser("fashion", help="class-conditional diffusion on Fashion-MNIST (the chapter)")
    sub = fashion.add_subparsers(dest="fashion_command", required=True)

    tr = sub.add_parser("train", help="train the chapter's class-conditional UNet")
    tr.add_argument("--data", default=None, help="folder of IDX files or a parquet file (default: "
                    "$SD_EXPLORER_FASHION_DATA, else load_dataset('fashion_mnist'))")
    tr.add_argument("--epochs", type=int, default=None, help="total epochs (default 25)")
    tr.add_argument("--batch-size", type=int, default=None, help="default 256")
    tr.add_argument("--lr", type=float, default=None, help="default 3e-4")
    tr.add_argument("--resume", default=None, metavar="CKPT", help="continue a run from ckpt-*.safetensors")
    tr.add_argument("--config", default=None, help="JSON file with TrainConfig fields")
    tr.add_argument("--tiny", action="store_true", help="a small model (quick CPU runs)")
    tr.add_argument("--ema", dest="ema_decay", type=float, default=None, metavar="DECAY",
                    help="also keep a moving average of the weights (e.g. 0.999); samples come from it")
    tr.add_argument("--limit", type=int, default=None, help="use only the first N images")
    _common(tr, "checkpoints")
    tr.set_defaults(func=cmd_train)

    sa = sub.add_parser("sample", help="generate images of one or more classes")
    sa.add_argument("--class", dest="classes", default="7", help="class id(s) 0-9, e.g. 7 or 0,7,9")
    sa.add_argument("-n", type=int, default=8, help="samples per class")
    sa.add_argument("--steps", type=int, default=1000, help="1000 = DDPM (the chapter); fewer = DDIM")
    sa.add_argument("--grey", type=float, default=None, help="loss guidance towards this grey level (0-1), e.g. 0.9")
    sa.add_argument("--grey-scale", type=float, default=0.0, help="loss guidance strength (0 = off), e.g. 20")
    sa.add_argument("--checkpoint", default=None, help="weights or ckpt-*.safetensors (default: shipped)")
    sa.add_argument("--compile", default=None, choices=COMPILE_MODES,
                    help="CUDA: torch.compile the UNet under the step's graph (compiles for a minute first)")
    _common(sa, "PNGs")
    sa.set_defaults(func=cmd_sample)
    return fashion


def _common(p: argparse.ArgumentParser, what: str) -> None:
    # default=SUPPRESS so values given to the top-level parser (--out, --device, --seed) survive
    p.add_argument("--out", default=argparse.SUPPRESS, help=f"folder for the {what}")
    p.add_argument("--device", default=argparse.SUPPRESS, help="cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--seed", type=int, default=argparse.SUPPRESS, help="random seed (default 0)")


def _parse_classes(text: str) -> list[int]:
    try:
        classes = [int(c) for c in str(text).replace(" ", "").split(",") if c != ""]
    except ValueError:
        raise UserError(f"--class takes ids 0-9 separated by commas, not {text!r}") from None
    if not classes or any(not 0 <= c <= 9 for c in classes):
        raise UserError(f"--class takes ids 0-9 (e.g. 7 or 0,7,9), not {text!r}")
    return classes


def build_config(args: argparse.Namespace):
    """The ``TrainConfig`` for ``fashion train`` (config file < checkpoint < flags)."""
    from core.fashion.model import ModelConfig
    from core.fashion.trainer import TrainConfig, resume_config

    if args.resume:
        cfg = resume_config(args.resume)
    elif args.config:
        try:
            raw = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"Cannot read config {args.config}: {exc}; pass a JSON file") from None
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserError(f"Unknown config keys {unknown}; allowed: {sorted(known)}")
        model = raw.pop("model", None)
        cfg = TrainConfig(**raw, model=ModelConfig.from_json(json.dumps(model)) if model else ModelConfig())
    else:
        cfg = TrainConfig()
    if args.tiny:
        cfg.model = ModelConfig.tiny()
    for key in ("epochs", "batch_size", "lr", "data", "ema_decay"):
        if getattr(args, key, None) is not None:
            setattr(cfg, key, getattr(args, key))
    if getattr(args, "seed", None) is not None and not args.resume:
        cfg.seed = args.seed
    out = getattr(args, "out", None)
    if not out:
        raise UserError("fashion train needs --out DIR for its checkpoints")
    cfg.out_dir = str(out)
    cfg.validate()
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """Train with a tqdm bar showing the loss; prints the final checkpoint path."""
    from tqdm import tqdm

    from core.fashion.data import load_fashion_mnist
    from core.fashion.trainer import Trainer

    cfg = build_config(args)
    data = load_fashion_mnist(cfg.data)
    if args.limit:
        data = data.subset(0, args.limit)
    bar = tqdm(desc="fashion train", unit="step", dynamic_ncols=True)

    def on_step(s) -> None:
        bar.total = s.total_steps
        bar.n = s.step
        bar.set_postfix(loss=f"{s.loss:.4f}", epoch=f"{s.epoch + 1}/{s.epochs}", ips=f"{s.images_per_s:.0f}")

    def on_epoch(e) -> None:
        bar.write(f"epoch {e.epoch + 1}/{e.epochs}: mean loss {e.mean_loss:.4f}"
                  + (f", checkpoint {e.checkpoint}" if e.checkpoint else ""))

    trainer = Trainer(cfg, data, device=getattr(args, "device", None), on_step=on_step, on_epoch=on_epoch)
    try:
        result = trainer.run()
    finally:
        bar.close()
    print(f"final loss {result.final_loss:.4f} after {result.step} steps "
          f"({result.images_per_s:.0f} img/s); checkpoint {result.checkpoint}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Write one PNG per sample (``class7_00.png``) and a captioned grid; prints the paths."""
    from tqdm import tqdm

    from core.fashion.data import CLASS_NAMES
    from core.fashion.grid import class_grid, save_png_atomic, to_pil
    from core.fashion.model import load_weights, load_shipped
    from core.fashion.sampler import generate_from_class

    classes = _parse_classes(args.classes)
    if args.n < 1:
        raise UserError(f"-n must be at least 1, not {args.n}")
    out = getattr(args, "out", None)
    if not out:
        raise UserError("fashion sample needs --out DIR for its PNGs")
    device = getattr(args, "device", None)
    model = load_weights(args.checkpoint, device=device) if args.checkpoint else load_shipped(device=device)
    bar = tqdm(total=args.steps, desc=f"sampling {'DDPM' if args.steps >= 1000 else 'DDIM'}", unit="step")
    images = generate_from_class(model, classes, n=args.n, steps=args.steps, seed=getattr(args, "seed", 0) or 0,
                                 callback=lambda s: bar.update(s.index + 1 - bar.n),
                                 callback_every=max(1, args.steps // 50),
                                 color_target=args.grey, color_scale=args.grey_scale, compile=args.compile)
    bar.close()
    labels = [c for c in classes for _ in range(args.n)]
    written = []
    for k, (img, c) in enumerate(zip(images, labels)):
        written.append(save_png_atomic(to_pil(img), out, f"class{c}_{k % args.n:02d}"))
    grid = save_png_atomic(class_grid(images, labels, CLASS_NAMES, per_row=min(args.n, 10)), out, "grid")
    print(f"wrote {len(written)} images and {grid}")
    return 0
