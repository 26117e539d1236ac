"""Compiled by default, never a wait: the background compile of the SD 1.5 UNet, its swap-in, the disk cache.

One process, as the app does it (``load_model(..., compile="default", background_compile=True)``):
  1. job 1: one image (a) from the CUDA graphs of the eager UNet while the batch-2 shape compiles beside it;
  2. wait for the compile; swap in (between jobs); (a) again, now compiled: first call and steady state;
  3. the chapter's sweep (b, batch 8) likewise;
  4. the compiled images against the eager ones (fp16 rounding).
Then a second process with the same compile cache (``core.compile_cache``) times the batch-2 compile again
(the cache's worth), and optionally regional compilation (diffusers' ``compile_repeated_blocks``).

    python3 bench/bench_compile.py --json OUT/compile.json [--second] [--regional]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

from timing import environment, sync, wall  # noqa: E402

PROMPT = "An oil painting of a collie in a top hat"
SCALES = [1.0, 2.0, 4.0, 12.0]
STEPS = 50


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def image_diff(a, b) -> dict:
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return {"max_abs": float(np.abs(x - y).max()), "mean_abs": float(np.abs(x - y).mean())}


def story(r: dict, save) -> None:
    from sd_explorer.core.fast import enable_fast_paths
    from sd_explorer.core.sampler import generate, sweep
    from sd_explorer.core.settings import SampleSettings
    from sd_shapes import sd15_model

    model = sd15_model()
    messages: list[tuple[float, str]] = []
    t_start = time.perf_counter()
    status = lambda text: (messages.append((round(time.perf_counter() - t_start, 2), text)), log(text))  # noqa: E731
    enable_fast_paths(model, compile="default", compile_background=True, status=status)
    fast = model.unet_forward
    one = SampleSettings(PROMPT, steps=STEPS, guidance_scale=7.5, seed=0)
    gen = lambda: generate(model, one)  # noqa: E731
    swp = lambda: sweep(model, SampleSettings(PROMPT, steps=STEPS, seed=0), SCALES)  # noqa: E731

    t0 = time.perf_counter()
    eager_a = gen()
    sync()
    r["a_first_image_s"] = time.perf_counter() - t0  # graph capture of the eager UNet included
    r["a_graphs_while_compiling"] = wall(gen, 3, warmup=0)
    r["engine_while_compiling"] = fast.engine
    save()
    t0 = time.perf_counter()
    fast.compiler.wait(600)
    r["compile_b2_wait_s"] = time.perf_counter() - t0
    r["compile_tasks"] = [{"label": t.label, "state": t.state.value, "seconds": t.seconds, "reason": t.reason}
                          for t in fast.compiler.tasks.values()]
    r["a_graphs"] = wall(gen, 5, warmup=0)
    r["swapped"] = model.swap_in_compiled()
    t0 = time.perf_counter()
    compiled_a = gen()
    sync()
    r["a_compiled_first_call_s"] = time.perf_counter() - t0
    r["a_compiled"] = wall(gen, 7, warmup=0)
    r["a_compiled_vs_graphs"] = image_diff(compiled_a.images[0], eager_a.images[0])
    r["engine_after_swap"] = fast.engine
    save()
    log("(b) sweep")
    t0 = time.perf_counter()
    eager_b = swp()
    sync()
    r["b_first_sweep_s"] = time.perf_counter() - t0
    r["b_graphs"] = wall(swp, 3, warmup=0)
    t0 = time.perf_counter()
    fast.compiler.wait(600)
    r["compile_b8_wait_s"] = time.perf_counter() - t0
    r["swapped_b"] = model.swap_in_compiled()
    swp()
    sync()
    r["b_compiled"] = wall(swp, 5, warmup=0)
    r["b_compiled_vs_graphs"] = image_diff(swp().images[-1], eager_b.images[-1])
    r["compile_tasks"] = [{"label": t.label, "state": t.state.value, "seconds": t.seconds, "reason": t.reason}
                          for t in fast.compiler.tasks.values()]
    r["status_messages"] = messages
    r["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    save()


def second_process(r: dict, save, regional: bool) -> None:
    """The batch-2 compile in a fresh process with the cache the first one filled (and regional compilation)."""
    code = (
        "import sys, time, torch; sys.path.insert(0, %r)\n"
        "from sd_shapes import sd15_model\n"
        "from bench_compile import unet_call\n"
        "from sd_explorer.core import compile_cache\n"
        "print('cache', compile_cache.use().folder)\n"
        "m = sd15_model(); unet = m.unet.to(memory_format=torch.channels_last); unet.fuse_qkv_projections()\n"
        "regional = %r\n"
        "if regional: unet.compile_repeated_blocks(fullgraph=True, dynamic=False); fn = unet\n"
        "else: fn = torch.compile(unet, dynamic=False, mode='default')\n"
        "t0 = time.perf_counter(); unet_call(fn, 2); torch.cuda.synchronize(); first = time.perf_counter() - t0\n"
        "t0 = time.perf_counter(); [unet_call(fn, 2) for _ in range(20)]; torch.cuda.synchronize()\n"
        "print('RESULT', first, (time.perf_counter() - t0) / 20 * 1000)\n" % (str(HERE), regional))
    for name, flag in (("second_process", False),) + ((("regional_first", True), ("regional_second", True)) if regional else ()):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=400, env=os.environ)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
        r[name] = {"wall_s": time.perf_counter() - t0, "rc": out.returncode,
                   "compile_s": float(line[0].split()[1]) if line else None,
                   "eager_call_ms_no_graph": float(line[0].split()[2]) if line else None,
                   "stderr_tail": out.stderr[-600:] if out.returncode else ""}
        log(f"{name}: {r[name]}")
        save()


def unet_call(fn, batch: int):
    g = torch.Generator("cuda").manual_seed(batch)
    x = torch.randn(batch, 4, 64, 64, device="cuda", dtype=torch.float16, generator=g).to(memory_format=torch.channels_last)
    cond = torch.randn(batch, 77, 768, device="cuda", dtype=torch.float16, generator=g)
    with torch.no_grad():
        return fn(x, torch.tensor(500, device="cuda"), encoder_hidden_states=cond, return_dict=False)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--second", action="store_true", help="also the compile in a second process (warm cache)")
    ap.add_argument("--regional", action="store_true", help="also regional compilation, first and warm")
    args = ap.parse_args()
    r: dict = {"environment": environment(" ".join(sys.argv))}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    save = lambda: out.write_text(json.dumps(r, indent=1, default=str))  # noqa: E731
    from sd_explorer.core import compile_cache

    r["cache"] = compile_cache.use().note
    story(r, save)
    if args.second or args.regional:
        second_process(r, save, args.regional)
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
