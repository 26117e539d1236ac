"""Timing helpers for the GPU benchmarks: wall-clock medians and CUDA-event per-call times."""

from __future__ import annotations

import datetime as dt
import platform
import shutil
import statistics
import subprocess
import time
from typing import Callable

import torch


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def wall(fn: Callable[[], object], runs: int, warmup: int = 1) -> dict:
    """Median (and every sample) of ``runs`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(samples), "samples_s": samples}


def per_call_ms(fn: Callable[[], object], iters: int = 10, repeats: int = 3, warmup: int = 3) -> dict:
    """Milliseconds per call, measured with CUDA events over ``iters`` back-to-back calls (median of repeats)."""
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / iters)
    return {"median_ms": statistics.median(samples), "samples_ms": samples}


def environment(command: str) -> dict:
    """GPU, driver, library versions, date and the command: the benchmark's header."""
    import diffusers
    import transformers

    info = {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
            "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none", "driver": "?"}
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
            info["driver"] = out[0] if out else "?"
        except (OSError, subprocess.SubprocessError):
            pass
    return info
