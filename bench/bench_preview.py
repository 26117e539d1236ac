"""What a live preview costs one image (issue 23 item 4): (a) with and without a per-step callback.

    python3 bench/bench_preview.py --json OUT/preview.json

SD 1.5 shapes (random weights, fp16, ``bench/sd_shapes.py``), the engine's default fast paths (CUDA graphs),
512x512, 50 steps, CFG 7.5; medians of ``--runs`` calls, alternated so drift hits every variant alike:
``none`` (no callback), ``progress bar`` (a callback marked ``without_previews``: no preview is made),
``preview`` (a callback that reads every step's preview: one step behind, ``core.step_reports``) and
``preview, synchronous`` (the old way: each step's ``.cpu()`` waits for the GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from timing import environment, sync  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    import functools

    from sd_explorer.core import sampler as sampler_module
    from sd_explorer.core.fast import enable_fast_paths
    from sd_explorer.core.sampler import generate
    from sd_explorer.core.settings import SampleSettings
    from sd_explorer.core.step_reports import StepReports, without_previews
    from sd_shapes import sd15_model

    model = sd15_model()
    enable_fast_paths(model)
    settings = SampleSettings("An oil painting of a collie in a top hat", steps=50, guidance_scale=7.5, seed=0)
    seen: list = []

    def read_preview(info) -> None:
        seen.append(info.preview.shape)

    variants = {
        "none": dict(callback=None, lag=None),
        "progress bar": dict(callback=without_previews(lambda info: None), lag=None),
        "preview": dict(callback=read_preview, lag=None),
        "preview, synchronous": dict(callback=read_preview, lag=False),
    }
    original = sampler_module.StepReports

    def run(v: dict) -> float:
        sampler_module.StepReports = functools.partial(original, lag=v["lag"])
        try:
            sync()
            t0 = time.perf_counter()
            generate(model, settings, callback=v["callback"])
            sync()
            return time.perf_counter() - t0
        finally:
            sampler_module.StepReports = original

    for v in variants.values():  # capture and warm every path
        run(v)
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.runs):
        for name, v in variants.items():
            samples[name].append(run(v))
    base = statistics.median(samples["none"])
    out = {"env": environment("python3 bench/bench_preview.py"), "runs": args.runs,
           "median_s": {k: statistics.median(s) for k, s in samples.items()},
           "overhead_pct": {k: 100 * (statistics.median(s) / base - 1) for k, s in samples.items()},
           "samples_s": samples, "previews_seen": len(seen)}
    Path(args.json).write_text(json.dumps(out, indent=1))
    for k in variants:
        print(f"{k:22s} {out['median_s'][k]:.4f} s  {out['overhead_pct'][k]:+.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
