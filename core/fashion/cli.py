"""``sd-explorer fashion train|sample``: argparse wiring for the Fashion-MNIST DDPM.

The lead's ``core/cli.py`` calls ``add_parser(subparsers)``; each handler takes the parsed args and
returns an exit code. ``UserError`` propagates to the top-level CLI (exit 2, one line). Everything is
checked (and ``--out`` proven writable) before data loads or a progress bar starts. ``fashion train``
stops cleanly on SIGINT/SIGTERM: it writes a resumable checkpoint and prints the command that resumes it.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
from pathlib import Path

from ..errors import Cancelled, UserError
from ..paths import expand
from ..inputs import COMPILE_MODES, check_seed, check_whole
from ..atomic import check_writable
from ..schema import parse_json
from .lr_schedule import SCHEDULES
from .recipes import CPU

MAX_PER_CLASS = 256  #: ``fashion sample -n``: 10 classes x 256 images stays within a few GB


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``fashion`` with ``train`` and ``sample`` on an argparse subparsers object."""
    fashion = subparsers.add_parser("fashion", help="class-conditional diffusion on Fashion-MNIST (the chapter)")
    sub = fashion.add_subparsers(dest="fashion_command", required=True)

    tr = sub.add_parser("train", help="train the chapter's class-conditional UNet")
    tr.add_argument("--data", default=None, help="folder of IDX files or a parquet file (default: "
                    "$SD_EXPLORER_FASHION_DATA, else load_dataset('fashion_mnist'))")
    tr.add_argument("--epochs", type=int, default=None, help="total epochs (default 25; the CPU recipe: 10)")
    tr.add_argument("--batch-size", type=int, default=None, help="default 256 (the CPU recipe: 64)")
    tr.add_argument("--lr", type=float, default=None, help="default 3e-4 (the CPU recipe: 2e-3)")
    tr.add_argument("--resume", default=None, metavar="CKPT", help="continue a run from ckpt-*.safetensors")
    tr.add_argument("--config", default=None, help="JSON file with TrainConfig fields")
    tr.add_argument("--tiny", action="store_true", help="the 42k-parameter UNet of the tests (seconds per epoch; learns shapes slowly)")
    tr.add_argument("--chapter", action="store_true", help="the chapter's 15.9M UNet (the default on CUDA)")
    tr.add_argument("--keep", type=int, default=3, metavar="N", help="keep the newest N checkpoints (0 = all; default 3)")
    tr.add_argument("--no-fidelity", dest="fidelity", action="store_false",
                    help="skip scoring samples with the classifier after each epoch")
    tr.add_argument("--ema", dest="ema_decay", type=float, default=None, metavar="DECAY",
                    help="also keep a moving average of the weights (e.g. 0.999); samples come from it")
    tr.add_argument("--lr-warmup", dest="lr_warmup_steps", type=int, default=None, metavar="STEPS",
                    help="warm the learning rate up linearly over STEPS steps (default 0)")
    tr.add_argument("--lr-schedule", choices=SCHEDULES, default=None,
                    help="after the warm-up: constant (default) or cosine (down to 0 at the last step)")
    tr.add_argument("--ema-warmup", dest="ema_warmup", action="store_true", default=None,
                    help="the EMA's decay grows with the step, (1 + step) / (10 + step), up to --ema")
    tr.add_argument("--limit", type=int, default=None, help="use only the first N images")
    _common(tr, "checkpoints")
    tr.set_defaults(func=cmd_train)

    sa = sub.add_parser("sample", help="generate images of one or more classes")
    sa.add_argument("--class", dest="classes", default="7", help="class id(s) 0-9, e.g. 7 or 0,7,9")
    sa.add_argument("-n", type=int, default=8, help="samples per class")
    sa.add_argument("--steps", type=int, default=None,
                    help="1000 = DDPM (the chapter); fewer = DDIM (default: 1000 on CUDA, 50 on a CPU)")
    sa.add_argument("--eta", type=float, default=1.0,
                    help="DDIM's noise (steps below 1000): 1 = DDPM-like, the default (94.4%% class fidelity at 50 "
                         "steps on the shipped model); 0 = deterministic DDIM (90.9%%)")
    sa.add_argument("--grey", type=float, default=None, help="loss guidance towards this grey level (0-1), e.g. 0.9")
    sa.add_argument("--grey-scale", type=float, default=0.0, help="loss guidance strength (0 = off), e.g. 20")
    sa.add_argument("--checkpoint", default=None,
                    help="weights, a ckpt-*.safetensors, or a training run's --out folder (its newest; default: shipped)")
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
    return list(dict.fromkeys(classes))  # a class named twice is one row: at most 10 x MAX_PER_CLASS images


def build_config(args: argparse.Namespace):
    """The ``TrainConfig`` for ``fashion train`` (config file < checkpoint < flags), every field checked."""
    from .model import ModelConfig
    from .train_config import TrainConfig, config_from_dict, resume_config

    if args.resume:
        cfg = resume_config(args.resume)
    elif args.config:
        try:
            raw = parse_json(expand(args.config, "--config").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            why = getattr(exc, "strerror", None) or " ".join(str(exc).split())[:120]
            raise UserError(f"cannot read --config {args.config} ({why}): pass a UTF-8 JSON file of TrainConfig fields") from None
        cfg = config_from_dict(raw, f"--config {args.config}")
    else:
        cfg = TrainConfig()
    if args.tiny and args.chapter:
        raise UserError("--tiny and --chapter pick different models; pass one")
    if args.tiny:
        cfg.model = ModelConfig.tiny()
    elif args.chapter:
        cfg.model = ModelConfig()
    elif not args.resume and not args.config:
        from ..devices import pick_device

        if pick_device(getattr(args, "device", None)).type != "cuda":
            cfg = CPU.config()
            print(f"fashion train: on a CPU the CPU recipe is the default (small UNet 1M, batch {CPU.batch_size}, "
                  f"lr {CPU.lr:g}, EMA {CPU.ema_decay}, {CPU.epochs} epochs; the chapter's 15.9M UNet takes hours "
                  f"here: --chapter trains it anyway). Expect {CPU.expect.split(': ', 1)[1]}.")
    for key in ("epochs", "batch_size", "lr", "data", "ema_decay", "lr_warmup_steps", "lr_schedule", "ema_warmup"):
        if getattr(args, key, None) is not None:
            setattr(cfg, key, getattr(args, key))
    if getattr(args, "keep", 0) < 0:
        raise UserError(f"--keep takes 0 (keep all) or more, not {args.keep}")
    if getattr(args, "seed", None) is not None and not args.resume:
        cfg.seed = args.seed
    out = getattr(args, "out", None)
    if not out:
        raise UserError("fashion train needs --out DIR for its checkpoints")
    if getattr(args, "limit", None) is not None:
        check_whole(args.limit, "--limit", 1, 10_000_000, 1000)
    cfg.out_dir = str(out)
    cfg.validate()
    return cfg


@contextlib.contextmanager
def stop_on_signals(cancel: threading.Event, say):
    """SIGINT/SIGTERM/SIGHUP set ``cancel`` (the trainer then writes a checkpoint and stops); a second one stops at once.

    Yields a list that holds the signal received, if any. Only the main thread can install handlers.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        cancel.set()
        say(f"sd-explorer: {signal.Signals(signum).name}: stopping after this step and writing a checkpoint "
            "(press ctrl+c again to stop at once, without one)")

    hangup = (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()  # a closed terminal or ssh session, as SIGTERM
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, *hangup)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def cmd_train(args: argparse.Namespace) -> int:
    """Train with a progress bar from the first step; prints the final checkpoint path.

    SIGINT/SIGTERM: a checkpoint, the command that resumes it, exit 130/143."""
    from tqdm import tqdm

    from .data import load_fashion_mnist
    from .trainer import Trainer

    cfg = build_config(args)
    check_writable(cfg.out_dir)
    data = load_fashion_mnist(cfg.data)
    if args.limit:
        data = data.subset(0, args.limit)
    cfg.log_seconds = cfg.log_seconds or 0.5  # the bar moves from the first step, not only every log_every
    total = cfg.epochs * math.ceil(len(data) / cfg.batch_size)
    trainer = Trainer(cfg, data, device=getattr(args, "device", None))
    bar = tqdm(total=total, desc="fashion train", unit="step", dynamic_ncols=True)

    def on_step(s) -> None:
        bar.total = s.total_steps
        bar.n = s.step
        bar.set_postfix(loss=f"{s.loss:.4f}", epoch=f"{s.epoch + 1}/{s.epochs}", ips=f"{s.images_per_s:.0f}")

    written: list[str] = []

    def on_epoch(e) -> None:
        from .checkpoint import prune
        from .monitor import epoch_model, score_model

        if e.checkpoint:
            written.append(e.checkpoint)
            prune(written, args.keep)
        score = ""
        if args.fidelity:  # the classes appearing, not only the loss falling
            report = score_model(epoch_model(trainer)).report
            score = f", class fidelity {report.overall:.0%}"
        bar.write(f"epoch {e.epoch + 1}/{e.epochs}: mean loss {e.mean_loss:.4f}{score}"
                  + (f", checkpoint {e.checkpoint}" if e.checkpoint else ""))

    trainer.on_step, trainer.on_epoch = on_step, on_epoch
    cancel = threading.Event()
    try:
        with stop_on_signals(cancel, lambda text: bar.write(text, file=sys.stderr)) as received:
            result = trainer.run(cancel=cancel)
    except Cancelled:
        bar.close()
        return _stopped(args, cfg, trainer.last_checkpoint, received[0] if received else signal.SIGINT)
    finally:
        bar.close()
    # One write of the whole line: under `accelerate launch` every rank prints it to the same pipe, and
    # print()'s separate write of the newline let two ranks' lines run together.
    sys.stdout.write(f"final loss {result.final_loss:.4f} (the last epoch's mean; its last step's "
                     f"{(result.losses or [float('nan')])[-1]:.4f}) after {result.step} steps "
                     f"({result.images_per_s:.0f} img/s); checkpoint {result.checkpoint}\n")
    sys.stdout.flush()
    return 0


def _stopped(args: argparse.Namespace, cfg, checkpoint: str | None, signum: int) -> int:
    """What an interrupted run says: where its checkpoint is and the command that continues it."""
    name = signal.Signals(signum).name
    if checkpoint:
        data = f" --data {cfg.data}" if cfg.data else ""
        limit = f" --limit {args.limit}" if getattr(args, "limit", None) else ""
        print(f"sd-explorer: {name}: stopped; checkpoint {checkpoint}; resume with: sd-explorer fashion train "
              f"--resume {checkpoint}{data}{limit} --epochs {cfg.epochs} --out {cfg.out_dir}", file=sys.stderr)
    else:
        print(f"sd-explorer: {name}: stopped before the first step; nothing to resume", file=sys.stderr)
    return 128 + int(signum)


def _sample_parameters(args, classes: list[int], model, k: int | None) -> str:
    """The ``parameters`` text of one sample (``k``) or of the grid (``None``), as the other PNGs carry."""
    from .data import CLASS_NAMES

    sampler = "DDPM" if args.steps >= model.config.num_train_timesteps else "DDIM"
    source = Path(model.source).name if model.source else "shipped"
    if k is None:
        first = "Fashion-MNIST classes " + ", ".join(f"{c} ({CLASS_NAMES[c]})" for c in classes)
    else:
        c = classes[k // args.n]
        first = f"Fashion-MNIST class {c} ({CLASS_NAMES[c]})"
    line = f"Steps: {args.steps}, Sampler: {sampler}, Seed: {getattr(args, 'seed', 0) or 0}, Size: 32x32, Model: {source}"
    line += f", Batch index: {k}" if k is not None else f", Grid: {len(classes)} classes x {args.n} samples"
    if args.grey is not None and args.grey_scale > 0:
        line += f", Grey guidance: {args.grey:g} x {args.grey_scale:g}"
    return f"{first}\n{line}"


def _check_sample_args(args: argparse.Namespace) -> list[int]:
    """Everything ``fashion sample`` takes, checked before the model loads or a bar starts."""
    classes = _parse_classes(args.classes)
    check_whole(args.n, "-n (samples per class)", 1, MAX_PER_CLASS, 8)
    if args.steps is not None:  # None: the device picks (1000 DDPM steps on CUDA, 50 DDIM on a CPU)
        check_whole(args.steps, "--steps", 1, 1000, 50)
    check_seed(getattr(args, "seed", 0) or 0, "--seed")
    if args.grey is not None and not (math.isfinite(args.grey) and 0 <= args.grey <= 1):
        raise UserError(f"--grey must be a grey level from 0 to 1, not {args.grey}: e.g. 0.9")
    if not (math.isfinite(args.grey_scale) and 0 <= args.grey_scale <= 1000):
        raise UserError(f"--grey-scale must be from 0 (off) to 1000, not {args.grey_scale}: e.g. 30")
    if args.grey_scale > 0 and args.grey is None:  # it would be silently ignored
        raise UserError("--grey-scale needs --grey, the grey level to pull towards (0-1): e.g. --grey 0.9 --grey-scale 30")
    if not getattr(args, "out", None):
        raise UserError("fashion sample needs --out DIR for its PNGs")
    return classes


def cmd_sample(args: argparse.Namespace) -> int:
    """Write one numbered PNG per sample (``fashion-class7-0001.png``) and a captioned grid, each with its
    ``parameters``, through ``core.outputs.save_png`` (atomic, never overwrites); prints the paths."""
    from tqdm import tqdm

    from .data import CLASS_NAMES
    from .grid import class_grid, to_pil
    from .model import load_shipped, load_weights
    from .sampler import generate_from_class
    from ..outputs import save_png

    classes = _check_sample_args(args)
    out = check_writable(args.out)
    device = getattr(args, "device", None)
    model = load_weights(args.checkpoint, device=device) if args.checkpoint else load_shipped(device=device)
    if args.checkpoint and Path(model.source).name != Path(args.checkpoint).name:  # a folder: say which one
        print(f"fashion sample: the newest checkpoint there, {model.source}")
    if args.steps is None:
        args.steps = 1000 if model.device.type == "cuda" else 50
        if args.steps < 1000:
            print("fashion sample: on a CPU the default is 50 DDIM steps (seconds); --steps 1000 runs the "
                  "chapter's DDPM (minutes)")
    if args.steps > model.config.num_train_timesteps:
        raise UserError(f"--steps must be at most {model.config.num_train_timesteps} for this model, not {args.steps}")
    sampler = "DDPM" if args.steps >= model.config.num_train_timesteps else "DDIM"
    bar = tqdm(total=args.steps, desc=f"sampling {sampler}", unit="step")
    try:
        images = generate_from_class(model, classes, n=args.n, steps=args.steps, seed=getattr(args, "seed", 0) or 0,
                                     callback=lambda s: bar.update(s.index + 1 - bar.n),
                                     callback_every=max(1, args.steps // 50),
                                     color_target=args.grey, color_scale=args.grey_scale, compile=args.compile,
                                     eta=args.eta)
    finally:
        bar.close()
    labels = [c for c in classes for _ in range(args.n)]
    written = []
    for k, (img, c) in enumerate(zip(images, labels)):
        written.append(save_png(to_pil(img), out, f"fashion-class{c}", _sample_parameters(args, classes, model, k)))
    grid = save_png(class_grid(images, labels, CLASS_NAMES, per_row=min(args.n, 10)), out, "fashion-grid",
                    _sample_parameters(args, classes, model, None))
    for path in written:
        print(path)
    print(f"wrote {len(written)} images and {grid}")
    return 0
