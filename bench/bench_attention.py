"""What recording the per-token heat maps costs: the 4-scale sweep with and without ``core.attention``.

    python bench/bench_attention.py [--model tiny] [--device cpu] [--runs 5] [--steps 25] [--threads 1]
                                    [--json OUT.json]

Times ``core.sampler.sweep`` (scales 1, 2, 4, 12, one batch) plain and inside
``core.attention.recording`` (maps read back once at the end, as the TUI does), alternating the two
so a shared machine's load hits both alike. Reports medians of wall-clock and process CPU seconds
(CPU time is what a loaded 2-core machine measures fairly) and the overhead in percent.
Targets (issue 15): <= 25 % on the CPU, <= 15 % on a GPU (there the UNet runs in CUDA graphs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

PROMPT = "a photo of a sneaker"
SCALES = [1.0, 2.0, 4.0, 12.0]
CPU_TARGET, GPU_TARGET = 0.25, 0.15


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model_spec: str = "tiny", device: str | None = None, runs: int = 5, steps: int = 25) -> dict:
    """Median seconds (wall, CPU) of the sweep plain and recorded, and the overheads."""
    from sd_explorer.core.attention import recording
    from sd_explorer.core.models import load_model
    from sd_explorer.core.settings import SampleSettings
    from sd_explorer.core.sampler import sweep

    model = load_model(model_spec, device=device)
    settings = SampleSettings(PROMPT, steps=steps, seed=0)

    def plain():
        sweep(model, settings, SCALES)

    def recorded():
        with recording(model, settings, len(SCALES)) as rec:
            sweep(model, settings, SCALES)
        rec.maps()

    times = {"plain": ([], []), "recorded": ([], [])}
    plain(), recorded()  # warm-up (and, on CUDA, the graph captures of both)
    for _ in range(runs):
        for name, fn in (("plain", plain), ("recorded", recorded)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            _sync(model.device)
            times[name][0].append(time.perf_counter() - t0)
            times[name][1].append(time.process_time() - c0)
    out = {"model": model_spec, "device": str(model.device), "steps": steps, "runs": runs,
           "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}
    for name, (wall, cpu) in times.items():
        out[f"{name}_wall_s"] = statistics.median(wall)
        out[f"{name}_cpu_s"] = statistics.median(cpu)
    out["overhead_wall"] = out["recorded_wall_s"] / out["plain_wall_s"] - 1
    out["overhead_cpu"] = out["recorded_cpu_s"] / out["plain_cpu_s"] - 1
    out["target"] = GPU_TARGET if model.device.type == "cuda" else CPU_TARGET
    return out


def report(r: dict) -> str:
    key = "overhead_wall" if r["device"].startswith("cuda") else "overhead_cpu"
    verdict = "meets" if r[key] <= r["target"] else "MISSES"
    return (f"{r['model']} on {r['device']} ({r['threads']} threads, load {r['load_average']:.1f}), "
            f"{len(SCALES)} scales x {r['steps']} steps, median of {r['runs']}:\n"
            f"  plain    {r['plain_wall_s']:.3f} s wall, {r['plain_cpu_s']:.3f} s CPU\n"
            f"  recorded {r['recorded_wall_s']:.3f} s wall, {r['recorded_cpu_s']:.3f} s CPU\n"
            f"  overhead {100 * r['overhead_wall']:+.1f} % wall, {100 * r['overhead_cpu']:+.1f} % CPU "
            f"({verdict} the {100 * r['target']:.0f} % target)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--device", default=None)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(args.model, args.device, args.runs, args.steps)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
