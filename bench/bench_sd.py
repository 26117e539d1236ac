"""SD 1.5 / SDXL on one GPU: diffusers' pipelines (eager) against our engine and its fast paths.

    python3 bench/bench_sd.py --out "$OUT" --pytest     # tests, then every measurement (one command)
    python3 bench/bench_sd.py --render bench_sd.json    # rewrite docs/benchmarks.md's sd-gpu section

Models: SD 1.5- and SDXL-shaped, random weights, fp16, built on the GPU (``bench/sd_shapes.py``);
diffusers and our engine share the very same modules. Everything runs in one process; warm-up
calls are excluded, each number is a median of several runs, and graph capture is reported apart.
(a) one 512x512 image, 50 steps, CFG 7.5; (b) the chapter's sweep 1, 2, 4, 12: four pipeline calls
against one batched ``sweep``; (c) UNet ms per call at batch 2 and 8, per fast-path combination;
(d) VAE decode; (e) the per-step preview's cost; SDXL 1024x1024, 30 steps: diffusers eager against
the same pipeline with our graphed UNet swapped in.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sd_report import render, write_doc  # noqa: E402
from timing import environment, per_call_ms, sync, wall  # noqa: E402

PROMPT = "An oil painting of a collie in a top hat"
SCALES = [1.0, 2.0, 4.0, 12.0]
STEPS, DEVICE, DTYPE, LATENT = 50, "cuda", torch.float16, 64  # (a), (b): 50 steps; 512x512 = 64x64 latents
XL_STEPS, XL_SIDE, XL_POOLED = 30, 1024, 1280  # SDXL: 30 steps at 1024x1024; bigG's pooled width
VARIANTS = {  # UNet ablation: enable_fast_paths options (the default turns every one on)
    "graphs": dict(channels_last=False, fuse_qkv=False, cudnn_benchmark=False),
    "graphs + channels_last + fused QKV (default)": dict(),
    "graphs + cudnn.benchmark": dict(channels_last=False, fuse_qkv=False, cudnn_benchmark=True),
    "graphs + channels_last + fused QKV + cudnn.benchmark": dict(cudnn_benchmark=True),
    "eager + channels_last + fused QKV": dict(graphs=False),
}
GPU_TESTS = ("tests/test_fast_gpu.py", "tests/test_sampler.py", "tests/test_gpu_engine.py")
#: ``--compile`` adds torch.compile (a minute or more of compiling per shape, so a run of its own)
COMPILED = {"default + torch.compile (Inductor, default mode)": dict(compile="default")}
#: ``--compile-autotune`` also Inductor's max-autotune (minutes of tuning per shape)
AUTOTUNE = {"default + torch.compile (max-autotune-no-cudagraphs)": dict(compile="max-autotune-no-cudagraphs")}
ATTENTION = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION")  # SDPA backends, tried at capture


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def image_diff(a, b) -> dict:
    x, y = np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)
    d = np.abs(x - y)
    return {"max": int(d.max()), "mean": float(d.mean())}


def forced_timesteps(where: str):
    """Make ``core.sampler`` build schedulers whose timesteps live on ``where`` (ablation)."""
    import sd_explorer.core.sampler as sampler

    original = sampler.make_scheduler

    def make(name, base):
        sched = original(name, base)
        real = sched.set_timesteps
        sched.set_timesteps = lambda n, device=None, **kw: real(n, device=where, **kw)
        return sched

    class Patch:
        def __enter__(self):
            sampler.make_scheduler = make

        def __exit__(self, *exc):
            sampler.make_scheduler = original

    return Patch()


def unet_inputs(batch: int, side: int, width: int, dtype=torch.float16) -> tuple:
    g = torch.Generator("cuda").manual_seed(batch)
    x = torch.randn(batch, 4, side, side, device="cuda", dtype=dtype, generator=g)
    cond = torch.randn(batch, 77, width, device="cuda", dtype=dtype, generator=g)
    return x, torch.tensor(500, device="cuda"), cond


def bench_sd15(r: dict, save, runs: int, compile: bool = False, autotune: bool = False) -> None:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    from sd_explorer.core.fast import disable_fast_paths, enable_fast_paths, graph_module_forward, restore_module_forward
    from sd_explorer.core.preview import latents_to_rgb
    from sd_explorer.core.settings import SampleSettings
    from sd_explorer.core.sampler import decode, generate, sweep
    from sd_shapes import count_params, sd15_model, sd15_pipeline

    t0 = time.perf_counter()
    model = sd15_model()
    pipe = sd15_pipeline(model)
    sync()
    r["build_s"] = time.perf_counter() - t0
    r["steps"] = STEPS
    r["params_m"] = {k: count_params(getattr(model, k)) / 1e6 for k in ("unet", "vae", "text_encoder")}
    one = SampleSettings(PROMPT, steps=STEPS, guidance_scale=7.5, seed=0)
    gen = lambda **kw: generate(model, one, **kw)  # noqa: E731
    swp = lambda: sweep(model, SampleSettings(PROMPT, steps=STEPS, seed=0), SCALES)  # noqa: E731

    def d_call(scale: float, steps: int = STEPS):
        return pipe(PROMPT, num_inference_steps=steps, guidance_scale=scale,
                    generator=torch.Generator("cpu").manual_seed(0)).images

    log("diffusers (a)")
    d_call(1.0, steps=2)  # warm the batch-1 (no CFG) path too
    r["a_diffusers"] = wall(lambda: d_call(7.5), runs, warmup=1)
    ref_image = d_call(7.5)[0]
    log(f"diffusers (a) {r['a_diffusers']['median_s']:.3f} s; (b)")
    r["b_diffusers"] = wall(lambda: [d_call(s) for s in SCALES], max(2, runs - 1), warmup=0)
    save()
    log("UNet and VAE, eager")
    unet = model.unet
    for b in (2, 8):
        x, t, cond = unet_inputs(b, 64, 768)
        r[f"c_unet_b{b}_diffusers"] = per_call_ms(lambda: unet(x, t, encoder_hidden_states=cond).sample)
    x, t, cond = unet_inputs(2, 64, 768)
    unet.set_attn_processor(AttnProcessor())
    r["c_unet_b2_no_sdpa"] = per_call_ms(lambda: unet(x, t, encoder_hidden_states=cond).sample, iters=5, repeats=1)
    unet.set_attn_processor(AttnProcessor2_0())
    z1 = torch.randn(1, 4, LATENT, LATENT, device=DEVICE, dtype=DTYPE)
    z4 = torch.randn(4, 4, LATENT, LATENT, device=DEVICE, dtype=DTYPE)
    for fmt, memory_format in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        model.vae.to(memory_format=memory_format)
        for n, z in ((1, z1), (4, z4)):
            r[f"d_vae_b{n}_{fmt}"] = per_call_ms(lambda: model.vae.decode(z).sample, iters=3, repeats=3, warmup=1)
    model.vae.to(memory_format=torch.contiguous_format)
    log("ours, eager (no fast paths)")
    r["a_ours_eager"] = wall(gen, max(2, runs - 1), warmup=0)
    eager_image = gen().images[0]
    save()
    log("UNet fast-path variants")
    for name, options in {**VARIANTS, **(COMPILED if compile else {}), **(AUTOTUNE if autotune else {})}.items():
        enable_fast_paths(model, **options)
        fast = model.unet_forward
        for b in (2, 8):
            x, t, cond = unet_inputs(b, 64, 768)
            r[f"c_unet_b{b}[{name}]"] = per_call_ms(lambda: fast(x, t, cond))
        r[f"captures[{name}]"] = [vars(c) for c in fast.captures]
    save()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    for backend in ATTENTION if not compile else ():  # exploration (skipped in a --compile run, for time)
        name = f"default, SDPA forced to {backend} at capture"
        enable_fast_paths(model, status=lambda m: r.setdefault("attention_status", []).append(m))
        fast = model.unet_forward
        try:
            for b in (2, 8):
                x, t, cond = unet_inputs(b, 64, 768)
                with sdpa_kernel(getattr(SDPBackend, backend)):
                    fast(x, t, cond)
                r[f"c_unet_b{b}[{name}]"] = per_call_ms(lambda: fast(x, t, cond))
        except Exception as exc:  # a backend that does not take these shapes
            r[f"attention_error[{backend}]"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        r[f"eager_fallbacks[{name}]"] = list(fast.graphed.eager.values())
    disable_fast_paths(model)
    save()
    log("ours, default fast paths")
    messages: list[str] = []
    r["options"] = enable_fast_paths(model, status=messages.append).describe()
    fast = model.unet_forward
    t1 = time.perf_counter()
    gen()
    sync()
    r["a_ours_first_call_s"] = time.perf_counter() - t1
    r["a_ours"] = wall(gen, runs + 2, warmup=0)
    result = gen()
    r["a_ours_timings"] = result.timings
    r["a_image_vs_diffusers"] = image_diff(result.images[0], ref_image)
    r["a_image_vs_eager"] = image_diff(result.images[0], eager_image)
    t1 = time.perf_counter()
    swp()
    sync()
    r["b_ours_first_call_s"] = time.perf_counter() - t1
    r["b_ours"] = wall(swp, runs + 2, warmup=0)
    r["captures"] = [vars(c) for c in fast.captures]
    r["status_messages"] = messages
    for b in (2, 8):
        x, t, cond = unet_inputs(b, 64, 768)
        r[f"c_unet_b{b}_ours"] = per_call_ms(lambda: fast(x, t, cond))
    for n, z in ((1, z1), (4, z4)):
        r[f"d_vae_b{n}_ours"] = per_call_ms(lambda: model.vae.decode(z).sample, iters=3, repeats=3, warmup=1)
    # (a)'s breakdown showed decode ~120 ms against ~21 ms per back-to-back call: time the sampler's own
    # decode() one call at a time (launch + run + copy to PIL), then with the VAE decode in a CUDA graph
    r["d_decode_wall_b1"] = wall(lambda: decode(model, z1), 5, warmup=1)
    graphed_vae = graph_module_forward(model.vae.decoder, "VAE decoder")
    r["d_decode_wall_b1_graphed"] = wall(lambda: decode(model, z1), 5, warmup=1)
    r["a_ours_vae_graphed"] = wall(gen, runs, warmup=1)
    r["captures_vae"] = [vars(c) for c in graphed_vae.captures]
    restore_module_forward(model.vae.decoder)
    save()
    log("(e) previews and the scheduler's timesteps")
    r["e_with_callback"] = wall(lambda: gen(callback=lambda info: None), runs, warmup=0)
    x0 = torch.randn(2, 4, LATENT, LATENT, device=DEVICE, dtype=DTYPE)
    r["e_latents_to_rgb"] = wall(lambda: latents_to_rgb(x0, model.preview_factors), 20, warmup=2)
    for where in ("cpu", "cuda") if not compile else ():  # exploration, as above
        with forced_timesteps(where):
            r[f"a_ours_timesteps_{where}"] = wall(gen, runs, warmup=1)
            r[f"e_with_callback_timesteps_{where}"] = wall(lambda: gen(callback=lambda info: None), runs, warmup=0)
    r["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    disable_fast_paths(model)
    save()
    if not compile:
        return
    log("ours, default fast paths + torch.compile (first calls include compiling)")
    torch._dynamo.reset()
    try:
        enable_fast_paths(model, compile="default")
        for key, call in (("a", gen), ("b", swp)):
            t1 = time.perf_counter()
            call()
            sync()
            r[f"{key}_ours_compiled_first_call_s"] = time.perf_counter() - t1
            r[f"{key}_ours_compiled"] = wall(call, runs + 2, warmup=0)
        r["a_compiled_image_vs_eager"] = image_diff(gen().images[0], eager_image)
    except Exception as exc:  # Inductor missing or failing here: keep the rest of the run
        r["compile_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    disable_fast_paths(model)
    torch._dynamo.reset()
    save()


def bench_sdxl(r: dict, save, runs: int) -> None:
    from sd_explorer.core.fast import graph_module_forward
    from sd_shapes import count_params, sdxl_pipeline

    t0 = time.perf_counter()
    pipe = sdxl_pipeline()
    sync()
    r["build_s"] = time.perf_counter() - t0
    r["params_m"] = {"unet": count_params(pipe.unet) / 1e6, "text_encoder_2": count_params(pipe.text_encoder_2) / 1e6}

    def call(steps: int = XL_STEPS):
        return pipe(PROMPT, num_inference_steps=steps, guidance_scale=5.0, height=XL_SIDE, width=XL_SIDE,
                    generator=torch.Generator("cpu").manual_seed(0)).images

    x, t, cond = unet_inputs(2, XL_SIDE // 8, 2048)
    added = {"text_embeds": torch.randn(2, XL_POOLED, device=DEVICE, dtype=DTYPE),
             "time_ids": torch.tensor([[XL_SIDE, XL_SIDE, 0, 0, XL_SIDE, XL_SIDE]] * 2, device=DEVICE, dtype=DTYPE)}
    step = lambda: pipe.unet(x, t, encoder_hidden_states=cond, added_cond_kwargs=added, return_dict=False)[0]  # noqa: E731
    log("SDXL diffusers eager")
    call(2)
    r["diffusers"] = wall(call, max(2, runs - 1), warmup=0)
    ref = call()[0]
    r["unet_b2_diffusers"] = per_call_ms(step, iters=5)
    save()
    log("SDXL with the graphed UNet")
    pipe.unet.fuse_qkv_projections()
    pipe.unet.to(memory_format=torch.channels_last)
    graphed = graph_module_forward(pipe.unet, "SDXL UNet", status=log)
    t1 = time.perf_counter()
    call()
    sync()
    r["first_call_s"] = time.perf_counter() - t1
    r["fast"] = wall(call, runs, warmup=0)
    r["image_vs_eager"] = image_diff(call()[0], ref)
    r["unet_b2_fast"] = per_call_ms(step, iters=5)
    r["captures"] = [vars(c) for c in graphed.captures]
    r["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    save()


def run_pytest() -> dict:
    cmd = [sys.executable, "-m", "pytest", *GPU_TESTS, "-o", "addopts=",
           "-q", "-p", "no:cacheprovider"]  # one -q (the project's addopts add another, hiding the totals)
    log("pytest: " + " ".join(cmd[1:]))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    out = proc.stdout.strip().splitlines()
    print("\n".join(out[-60:]), proc.stderr[-2000:], flush=True)
    totals = [line for line in out if re.search(r"\d+ (passed|failed|error)", line)]
    return {"command": "python3 -m pytest " + " ".join(GPU_TESTS) + " -q", "rc": proc.returncode,
            "summary": totals[-1].strip("= ") if totals else "(no summary line)", "seconds": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="folder for bench_sd.json and bench_sd.md")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per end-to-end measurement")
    ap.add_argument("--pytest", action="store_true", help="run the GPU equality tests first and record them")
    ap.add_argument("--no-sdxl", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile under the graphs (slow to compile)")
    ap.add_argument("--compile-autotune", action="store_true", help="with --compile: Inductor's max-autotune too")
    ap.add_argument("--render", help="render this results JSON into docs/benchmarks.md and exit")
    args = ap.parse_args()
    if args.render:
        write_doc(json.loads(Path(args.render).read_text()))
        return 0
    if not torch.cuda.is_available():
        print("bench_sd needs a CUDA GPU", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"env": environment("python3 bench/bench_sd.py " + " ".join(sys.argv[1:]))}

    def save() -> None:
        (out / "bench_sd.json").write_text(json.dumps(results, indent=1, default=str))

    if args.pytest:
        results["tests"] = run_pytest()
        save()
    for name, fn in (("sd15", bench_sd15), ("sdxl", None if args.no_sdxl else bench_sdxl)):
        if fn is None:
            continue
        results[name] = {}
        try:
            kwargs = {"compile": args.compile, "autotune": args.compile_autotune} if name == "sd15" else {}
            fn(results[name], save, args.runs, **kwargs)
        except Exception as exc:  # keep what was measured; say what failed
            import traceback

            traceback.print_exc()
            results[name]["error"] = f"{type(exc).__name__}: {exc}"
        save()
        torch.cuda.empty_cache()
    (out / "bench_sd.md").write_text(render(results))
    print(render(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
