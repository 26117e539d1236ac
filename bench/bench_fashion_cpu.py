"""What a CPU learner sees in five minutes (issue 27 item 8): class fidelity against wall-clock seconds.

    python3 bench/bench_fashion_cpu.py --data ../shared/data/fashion-mnist-8k --seconds 300 \
        --recipe pane --json OUT/cpu_recipe.json [--threads 2]

Trains one recipe (``pane``: the training pane's CPU default, ``core.fashion.recipes.CPU``; ``old``: the
small UNet at the chapter's batch 256 and lr 3e-4, the default before; or a JSON object of TrainConfig
fields) for its epochs or at most ``--seconds`` of training, and every ``--every`` seconds scores the model the pane would show
(its EMA when the recipe keeps one) as the pane does: 10 classes x ``--per-class`` samples, DDIM 50, the
shipped classifier (trained only on real images). Scoring time is left out of the training clock.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def recipe(name: str):
    from sd_explorer.core import fashion as fm
    from sd_explorer.core.fashion.train_config import config_from_dict

    if name == "pane":
        from sd_explorer.core.fashion.recipes import CPU

        return CPU.config()
    if name == "old":
        return fm.TrainConfig(epochs=25, batch_size=256, model=fm.ModelConfig.tiny())
    raw = json.loads(name)
    model = raw.pop("model", None)
    cfg = config_from_dict(raw, "--recipe")
    if model == "tiny":
        cfg.model = fm.ModelConfig.tiny()
    elif isinstance(model, dict):
        cfg.model = fm.ModelConfig.from_dict(model)
    return cfg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--every", type=float, default=60)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--recipe", default="pane")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", required=True)
    ap.add_argument("--png", default=None, help="the last scored samples as a class grid (one row per class)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sd_explorer.core import fashion as fm
    from sd_explorer.core.errors import Cancelled
    from sd_explorer.core.fashion.monitor import epoch_model, score_model

    cfg = recipe(args.recipe)
    data = fm.load_fashion_mnist(args.data)
    t_start = time.perf_counter()
    cancel = threading.Event()
    out = {"recipe": args.recipe, "config": cfg.to_dict(), "threads": args.threads, "points": []}
    clock = {"train_s": 0.0, "since": time.perf_counter(), "next": args.every}
    trainer = None

    def on_step(stats, final: bool = False) -> None:
        now = time.perf_counter()
        clock["train_s"] += now - clock["since"]
        clock["since"] = now
        if clock["train_s"] >= clock["next"] or final:
            clock["next"] += args.every
            t0 = time.perf_counter()
            scored = score_model(epoch_model(trainer), per_class=args.per_class)
            out["points"].append({"train_s": round(clock["train_s"], 1), "step": stats.step, "loss": stats.loss,
                                  "fidelity": scored.report.overall, "score_s": round(time.perf_counter() - t0, 1)})
            print(json.dumps(out["points"][-1]), flush=True)
            if args.png:
                from sd_explorer.core.fashion.data import CLASS_NAMES
                from sd_explorer.core.fashion.grid import class_grid

                labels = [k // args.per_class for k in range(len(scored.images))]
                class_grid(scored.images, labels, CLASS_NAMES, args.per_class).save(args.png)  # a bench's own file
            Path(args.json).write_text(json.dumps(out, indent=1))
            clock["since"] = time.perf_counter()
            if clock["train_s"] >= args.seconds:
                cancel.set()

    cfg.log_every = 5
    last: list = []

    def report(stats) -> None:
        last[:] = [stats]
        on_step(stats)

    trainer = fm.Trainer(cfg, data, device="cpu", on_step=report)
    try:
        trainer.run(cancel=cancel)
        on_step(last[0], final=True)  # the run's end (its recipe's epochs)
    except Cancelled:
        pass
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
