"""Fashion-MNIST benchmark: the chapter's loops vs core.fashion, in one process, on one GPU.

    python bench/bench_fashion.py --data ../shared/data/fashion-mnist-8k --json OUT.json
    python bench/bench_fashion.py --render OUT.json      # rewrite docs/benchmarks.md's fashion section

Training: the chapter's loop (PIL per-image transforms + DataLoader, fp32) against ``Trainer``
(data on the device, batched preprocessing, bf16, fused AdamW), same epochs, same data.
Sampling: the chapter's eager 1000-step loop (``scheduler.step``, fp32, 8 images) against
``generate_from_class`` (CUDA graph, fp16) for 8 images and for 10 classes x 8 in one batch.
CPU: ``Trainer`` img/s and s/epoch, measured in a subprocess (``--cpu``).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from sd_explorer.core.fashion.data import load_fashion_mnist  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- fashion:start -->", "<!-- fashion:end -->"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench_cpu(data_dir: str, steps: int) -> dict:
    """Our trainer on the CPU (full model, batch 256) for a few steps."""
    from sd_explorer.core.fashion.train_config import TrainConfig
    from sd_explorer.core.fashion.trainer import Trainer

    data = load_fashion_mnist(data_dir).subset(0, 256 * (steps + 1))
    rates: list[float] = []
    cfg = TrainConfig(epochs=1, log_every=1)
    Trainer(cfg, data, device="cpu", on_step=lambda s: rates.append(s.images_per_s)).run()
    steady = sorted(rates[1:])[len(rates[1:]) // 2]  # median, first step excluded (warm-up)
    return {"images_per_s": steady, "s_per_epoch_8k": 8192 / steady, "s_per_epoch_60k": 60000 / steady,
            "threads": torch.get_num_threads(), "steps": steps}


def _steady(epochs: list, n: int) -> float:
    """img/s over all epochs but the first (warm-up, capture)."""
    return n * (len(epochs) - 1) / (epochs[-1].elapsed_s - epochs[0].elapsed_s)


def bench_gpu(data_dir: str, epochs: int, baseline_epochs: int) -> dict:
    from sd_explorer.core.fashion.chapter import chapter_generate_from_class, chapter_train
    from sd_explorer.core.fashion.model import FashionDDPM, ModelConfig, build_scheduler
    from sd_explorer.core.fashion.sampler import generate_from_class
    from sd_explorer.core.fashion.train_config import TrainConfig
    from sd_explorer.core.fashion.trainer import Trainer

    data = load_fashion_mnist(data_dir)
    out: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "images": len(data)}
    ours_epochs: list = []
    res = Trainer(TrainConfig(epochs=epochs), data, on_epoch=ours_epochs.append).run()
    out["ours_train"] = {"epochs": epochs, "seconds": res.elapsed_s, "images_per_s": res.images_per_s,
                         "steady_images_per_s": _steady(ours_epochs, len(data)), "final_loss": res.final_loss,
                         "epoch_losses": res.epoch_losses}
    eager_epochs: list = []
    Trainer(TrainConfig(epochs=3, cuda_graph=False), data, on_epoch=eager_epochs.append).run()
    out["ours_train_eager_images_per_s"] = _steady(eager_epochs, len(data))
    try:  # torch.compile (Inductor) under the same whole-step graph: fewer, fused kernels
        torch._dynamo.reset()
        compiled_epochs: list = []
        t0 = time.perf_counter()
        Trainer(TrainConfig(epochs=4, compile=True), data, on_epoch=compiled_epochs.append).run()
        out["ours_train_compiled"] = {"steady_images_per_s": _steady(compiled_epochs, len(data)),
                                      "first_epoch_s": compiled_epochs[0].elapsed_s,
                                      "seconds": time.perf_counter() - t0,
                                      "epoch_losses": [e.mean_loss for e in compiled_epochs]}
    except Exception as exc:  # keep the rest of the benchmark
        out["ours_train_compiled"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    torch._dynamo.reset()
    print("ours", json.dumps(out["ours_train"])[:300], flush=True)
    ch = chapter_train(data, baseline_epochs, device="cuda")
    out["chapter_train"] = {k: v for k, v in ch.items() if k != "model"}
    out["chapter_train"]["epochs"] = baseline_epochs
    print("chapter", json.dumps(out["chapter_train"])[:300], flush=True)

    model32 = res.model.eval().to(memory_format=torch.contiguous_format)
    sched = build_scheduler()
    torch.manual_seed(0)
    warm = build_scheduler()
    warm.set_timesteps(20)
    chapter_generate_from_class(model32, warm, 7, 8)  # warm-up
    _sync()
    t0 = time.perf_counter()
    chapter_generate_from_class(model32, sched, 7, 8)
    _sync()
    out["chapter_sample_8_s"] = time.perf_counter() - t0

    unet16 = copy.deepcopy(model32).to(dtype=torch.float16).to(memory_format=torch.contiguous_format)
    fm = FashionDDPM(unet16, ModelConfig())

    def timed(**kw) -> tuple[float, torch.Tensor]:
        _sync()
        t = time.perf_counter()
        imgs = generate_from_class(fm, **kw)
        _sync()
        return time.perf_counter() - t, imgs

    timed(classes=7, n=8, use_graph=True)  # warm-up (cudnn, allocator)
    out["ours_sample_8_graph_s"], g8 = timed(classes=7, n=8, use_graph=True)
    out["ours_sample_8_eager_s"], e8 = timed(classes=7, n=8, use_graph=False)
    out["graph_equals_eager"] = bool(torch.equal(g8, e8))
    out["graph_eager_max_diff"] = float((g8 - e8).abs().max())
    out["ours_sample_80_graph_s"], _ = timed(classes=list(range(10)), n=8, use_graph=True)
    try:
        out["ours_sample_8_compiled_first_s"], _ = timed(classes=7, n=8, use_graph=True, compile="default")
        out["ours_sample_8_compiled_s"], c8 = timed(classes=7, n=8, use_graph=True, compile="default")
        out["compiled_vs_eager_max_diff"] = float((c8 - e8).abs().max())
        out["ours_sample_80_compiled_s"], _ = timed(classes=list(range(10)), n=8, use_graph=True, compile="default")
    except Exception as exc:
        out["compiled_sample_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    out["ours_sample_80_ddim50_s"], _ = timed(classes=list(range(10)), n=8, steps=50, use_graph=True)
    k = min(baseline_epochs, epochs) - 1
    out["loss_at_baseline_epochs"] = {"epochs": k + 1, "chapter": ch["epoch_losses"][k],
                                      "ours": res.epoch_losses[k]}
    out["ratios"] = {
        "train_images_per_s": out["ours_train"]["images_per_s"] / out["chapter_train"]["images_per_s"],
        "train_steady_images_per_s": out["ours_train"]["steady_images_per_s"] / out["chapter_train"]["images_per_s"],
        "train_eager_images_per_s": out["ours_train_eager_images_per_s"] / out["chapter_train"]["images_per_s"],
        "sample_8x1000": out["chapter_sample_8_s"] / out["ours_sample_8_graph_s"],
        "sample_8x1000_eager_fp16": out["chapter_sample_8_s"] / out["ours_sample_8_eager_s"],
    }
    print("sampling", json.dumps({k: v for k, v in out.items() if "sample" in k or k == "ratios"}), flush=True)
    return out


def _compiled_rows(g: dict) -> list[str]:
    """Rows for the torch.compile variants (absent from runs before they existed)."""
    rows, tc, chapter = [], g.get("ours_train_compiled"), g["chapter_train"]["images_per_s"]
    if tc and "error" in tc:
        rows.append(f"| training with torch.compile under the graph | | failed: {tc['error'][:100]} | |")
    elif tc:
        rows.append(f"| training with torch.compile under the graph (4 epochs; first epoch {tc['first_epoch_s']:.0f} s "
                    f"with compiling) | | {tc['steady_images_per_s']:,.0f} | {tc['steady_images_per_s'] / chapter:.1f}x |")
    if "ours_sample_8_compiled_s" in g:
        rows.append(f"| sample 8 x 1000, torch.compile under the graph (first call {g['ours_sample_8_compiled_first_s']:.0f} s"
                    f"; max diff vs eager {g['compiled_vs_eager_max_diff']:.1e}) | {g['chapter_sample_8_s']:.2f} s | "
                    f"{g['ours_sample_8_compiled_s']:.2f} s | {g['chapter_sample_8_s'] / g['ours_sample_8_compiled_s']:.1f}x |")
        rows.append(f"| 10 classes x 8, 1000 steps, compiled | | {g['ours_sample_80_compiled_s']:.2f} s | |")
    elif "compiled_sample_error" in g:
        rows.append(f"| sampling with torch.compile | | failed: {g['compiled_sample_error'][:100]} | |")
    return rows


def render(results: dict) -> str:
    """The markdown section for docs/benchmarks.md."""
    g, c = results.get("gpu", {}), results.get("cpu", {})
    lines = [START, "## Fashion-MNIST class-conditional DDPM (`bench/bench_fashion.py`)", ""]
    if g:
        o, ch, r = g["ours_train"], g["chapter_train"], g["ratios"]
        lines += [
            f"{g['device']}, torch {g['torch']}, {g['images']} images (the 8k subset), one process.", "",
            "| | chapter's loop | core.fashion | ratio |", "|---|---|---|---|",
            f"| training img/s ({ch['epochs']} vs {o['epochs']} epochs, batch 256) | {ch['images_per_s']:,.0f} | "
            f"{o['images_per_s']:,.0f} (steady {o['steady_images_per_s']:,.0f}) | {r['train_images_per_s']:.1f}x "
            f"(steady {r['train_steady_images_per_s']:.1f}x) |",
            f"| same trainer without the CUDA graph (eager, bf16) | | {g['ours_train_eager_images_per_s']:,.0f} | "
            f"{r['train_eager_images_per_s']:.1f}x |",
            f"| mean loss of epoch {g['loss_at_baseline_epochs']['epochs']} | "
            f"{g['loss_at_baseline_epochs']['chapter']:.4f} | {g['loss_at_baseline_epochs']['ours']:.4f} | |",
            f"| final loss after {o['epochs']} epochs | | {o['final_loss']:.4f} | |",
            f"| sample 8 images x 1000 DDPM steps | {g['chapter_sample_8_s']:.2f} s (fp32 eager) | "
            f"{g['ours_sample_8_graph_s']:.2f} s (fp16 CUDA graph) | {r['sample_8x1000']:.1f}x |",
            f"| same, our loop eager (fp16) | | {g['ours_sample_8_eager_s']:.2f} s | "
            f"{r['sample_8x1000_eager_fp16']:.1f}x |",
            f"| 10 classes x 8 in one batch, 1000 DDPM steps | | {g['ours_sample_80_graph_s']:.2f} s | |",
            f"| 10 classes x 8, DDIM 50 steps | | {g['ours_sample_80_ddim50_s']:.3f} s | |",
            *_compiled_rows(g),
            "",
            f"CUDA graph vs eager, same seed: identical = {g['graph_equals_eager']} "
            f"(max abs difference {g['graph_eager_max_diff']:.2e}).",
        ]
    if c:
        lines += ["", f"CPU ({c['threads']} threads, full model, batch 256, {c['steps']} steps): "
                  f"{c['images_per_s']:.0f} img/s = {c['s_per_epoch_8k']:.0f} s/epoch on the 8k subset, "
                  f"{c['s_per_epoch_60k']:.0f} s/epoch on the full 60k."]
    for note in results.get("notes", []):
        lines += ["", note]
    lines += ["", END]
    return "\n".join(lines)


def write_section(text: str, doc: Path = DOC) -> None:
    """Replace (or append) the fashion section of docs/benchmarks.md, leaving the rest untouched."""
    from bench.doc_section import write_section as write

    write(text, START, END, doc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fashion-mnist-8k"))
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--baseline-epochs", type=int, default=5)
    ap.add_argument("--cpu", action="store_true", help="only the CPU measurement (prints JSON)")
    ap.add_argument("--cpu-steps", type=int, default=4)
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--render", help="render this results JSON into docs/benchmarks.md and exit")
    args = ap.parse_args()
    if args.render:
        write_section(render(json.loads(Path(args.render).read_text())))
        return 0
    if args.cpu:
        print(json.dumps(bench_cpu(args.data, args.cpu_steps)))
        return 0
    results: dict = {}
    if torch.cuda.is_available():
        results["gpu"] = bench_gpu(args.data, args.epochs, args.baseline_epochs)
    cpu = subprocess.run([sys.executable, __file__, "--cpu", "--data", args.data, "--cpu-steps",
                          str(args.cpu_steps)], capture_output=True, text=True, env={**__import__("os").environ,
                                                                                    "CUDA_VISIBLE_DEVICES": ""})
    if cpu.returncode == 0:
        results["cpu"] = json.loads(cpu.stdout.strip().splitlines()[-1])
    else:
        print(cpu.stderr[-2000:], file=sys.stderr)
    text = json.dumps(results, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(text[:3000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
