"""``bench_sd.py``'s results as markdown, and the sd-gpu section of ``docs/benchmarks.md``."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- sd-gpu:start -->", "<!-- sd-gpu:end -->"


def _get(d: dict, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _s(x) -> str:
    return "—" if x is None else f"{x:.3f} s"


def _ms(x) -> str:
    return "—" if x is None else f"{x:.2f} ms"


def _ratio(a, b) -> str:
    return "—" if a is None or b is None or b == 0 else f"**{a / b:.1f}x**"


def _sd15(r: dict) -> list[str]:
    med = lambda k: _get(r, k, "median_s")  # noqa: E731
    ms = lambda k: _get(r, k, "median_ms")  # noqa: E731
    lines = ["### SD 1.5 shapes (UNet 859.5M, fp16), 512x512", "",
             "| measurement | diffusers (eager) | ours | ratio | target |", "|---|---|---|---|---|"]
    lines.append(f"| (a) one image, 50 steps, CFG 7.5, PNDM | {_s(med('a_diffusers'))} | {_s(med('a_ours'))} | "
                 f"{_ratio(med('a_diffusers'), med('a_ours'))} | <= 0.40 s, >= 5x |")
    lines.append(f"| (b) guidance sweep 1, 2, 4, 12: 4 pipeline calls vs one batched sweep | {_s(med('b_diffusers'))} | "
                 f"{_s(med('b_ours'))} | {_ratio(med('b_diffusers'), med('b_ours'))} | <= 0.6 s, >= 12x |")
    for b, target in ((2, "<= 6 ms"), (8, "")):
        lines.append(f"| (c) UNet, one call at batch {b} | {_ms(ms(f'c_unet_b{b}_diffusers'))} | "
                     f"{_ms(ms(f'c_unet_b{b}_ours'))} | {_ratio(ms(f'c_unet_b{b}_diffusers'), ms(f'c_unet_b{b}_ours'))} | {target} |")
    for n in (1, 4):
        lines.append(f"| (d) VAE decode, {n} image{'s' if n > 1 else ''} 512x512 | {_ms(ms(f'd_vae_b{n}_contiguous'))} | "
                     f"{_ms(ms(f'd_vae_b{n}_ours'))} | {_ratio(ms(f'd_vae_b{n}_contiguous'), ms(f'd_vae_b{n}_ours'))} | |")
    for key, what in (("a", "(a) with torch.compile under the graphs"), ("b", "(b) with torch.compile under the graphs")):
        if med(f"{key}_ours_compiled") is not None:
            lines.append(f"| {what} | {_s(med(f'{key}_diffusers'))} | {_s(med(f'{key}_ours_compiled'))} | "
                         f"{_ratio(med(f'{key}_diffusers'), med(f'{key}_ours_compiled'))} | (first call "
                         f"{_s(r.get(f'{key}_ours_compiled_first_call_s'))}) |")
    if med("d_decode_wall_b1") is not None:
        lines.append(f"| (d) the sampler's decode(), 1 image, one call at a time (wall) | | {_s(med('d_decode_wall_b1'))} | | |")
        lines.append(f"| (d) same, VAE decoder in a CUDA graph | | {_s(med('d_decode_wall_b1_graphed'))} | | |")
        lines.append(f"| (a) with the VAE decoder graphed too | {_s(med('a_diffusers'))} | {_s(med('a_ours_vae_graphed'))} | "
                     f"{_ratio(med('a_diffusers'), med('a_ours_vae_graphed'))} | |")
    if r.get("compile_error"):
        lines.append(f"| torch.compile failed: {r['compile_error'][:120]} | | | | |")
    with_cb, without = med("e_with_callback"), med("a_ours")
    per_step = None if with_cb is None or without is None else (with_cb - without) / r.get("steps", 50) * 1000
    lines.append(f"| (e) per-step preview (x0 -> RGB -> host), cost per step | — | {_ms(per_step)} | | cheap |")
    lines += ["", f"Our engine without fast paths, (a): {_s(med('a_ours_eager'))} "
              f"({_ratio(med('a_diffusers'), med('a_ours_eager'))} vs diffusers). Fast paths on: `{r.get('options', '?')}`.",
              f"First call (includes capturing the graph): (a) {_s(r.get('a_ours_first_call_s'))}, "
              f"(b) {_s(r.get('b_ours_first_call_s'))}. Captures (warm-up + record, reported to the status callback):"]
    for c in r.get("captures", []):
        lines.append(f"- {c['signature']}: warm-up {c['warmup_s']:.3f} s + capture {c['capture_s']:.3f} s")
    t = r.get("a_ours_timings") or {}
    if t:
        lines.append(f"\n(a) breakdown: encode {t.get('encode_s', 0) * 1000:.1f} ms, denoise {t.get('denoise_s', 0) * 1000:.1f} ms "
                     f"({t.get('step_ms', 0):.2f} ms/step), decode {t.get('decode_s', 0) * 1000:.1f} ms.")
    lines += ["", "UNet ms per call (CUDA events, median of 3 x 10 calls, inputs copied in and the output copied out):", "",
              "| variant | batch 2 | batch 8 |", "|---|---|---|",
              f"| diffusers eager (SDPA, contiguous) | {_ms(ms('c_unet_b2_diffusers'))} | {_ms(ms('c_unet_b8_diffusers'))} |",
              f"| eager, classic attention (no SDPA) | {_ms(ms('c_unet_b2_no_sdpa'))} | — |"]
    for key in r:
        if key.startswith("c_unet_b2[") and key.endswith("]"):
            name = key[len("c_unet_b2["):-1]
            lines.append(f"| {name} | {_ms(ms(key))} | {_ms(ms(f'c_unet_b8[{name}]'))} |")
    lines += ["", "| VAE decode | contiguous | channels_last |", "|---|---|---|"]
    for n in (1, 4):
        lines.append(f"| {n} image(s) | {_ms(ms(f'd_vae_b{n}_contiguous'))} | {_ms(ms(f'd_vae_b{n}_channels_last'))} |")
    lines += ["", "Scheduler timesteps on the host vs on the GPU (same fast paths; a GPU timestep makes every "
              "`scheduler.step` sync):", "", "| timesteps | (a) | (a) with a per-step preview callback |", "|---|---|---|"]
    for where in ("cpu", "cuda"):
        lines.append(f"| {where} | {_s(med(f'a_ours_timesteps_{where}'))} | {_s(med(f'e_with_callback_timesteps_{where}'))} |")
    rgb = med("e_latents_to_rgb")
    lines.append(f"\n`latents_to_rgb` alone (2 x 64x64, to a host uint8 array): {_ms(None if rgb is None else rgb * 1000)}.")
    for key, what in (("a_image_vs_diffusers", "ours (fast) vs diffusers"), ("a_image_vs_eager", "ours fast vs ours eager")):
        d = r.get(key)
        if d:
            lines.append(f"Image difference, {what}, (a): max {d['max']}/255, mean {d['mean']:.3f}/255.")
    if r.get("max_memory_gib"):
        lines.append(f"Peak GPU memory allocated: {r['max_memory_gib']:.1f} GiB.")
    if r.get("error"):
        lines.append(f"\n**Stopped early:** {r['error']}")
    return lines


def _sdxl(r: dict) -> list[str]:
    med = lambda k: _get(r, k, "median_s")  # noqa: E731
    ms = lambda k: _get(r, k, "median_ms")  # noqa: E731
    lines = ["### SDXL shapes (UNet 2.57B, fp16), 1024x1024, 30 steps, CFG 5, Euler", "",
             "Timed through diffusers' `StableDiffusionXLPipeline` on both sides: eager, against the same pipeline "
             "with our UNet fast path swapped into `pipe.unet` (`core.fast.graph_module_forward` + channels_last + "
             "fused QKV). Text encoders, scheduler and VAE (upcast to fp32 by the "
             "pipeline) are diffusers' in both, so this ratio is the UNet fast path's alone.", "",
             "| measurement | diffusers (eager) | with our graphed UNet | ratio |", "|---|---|---|---|",
             f"| one image, 30 steps | {_s(med('diffusers'))} | {_s(med('fast'))} | {_ratio(med('diffusers'), med('fast'))} |",
             f"| UNet, one call at batch 2 | {_ms(ms('unet_b2_diffusers'))} | {_ms(ms('unet_b2_fast'))} | "
             f"{_ratio(ms('unet_b2_diffusers'), ms('unet_b2_fast'))} |", "",
             f"First call (includes the capture): {_s(r.get('first_call_s'))}."]
    for c in r.get("captures", []):
        lines.append(f"- {c['signature']}: warm-up {c['warmup_s']:.3f} s + capture {c['capture_s']:.3f} s")
    d = r.get("image_vs_eager")
    if d:
        lines.append(f"Image difference, graphed vs eager: max {d['max']}/255, mean {d['mean']:.3f}/255.")
    if r.get("error"):
        lines.append(f"\n**Stopped early:** {r['error']}")
    return lines


def render(results: dict) -> str:
    """The markdown for the sd-gpu section (no markers)."""
    env = results.get("env", {})
    lines = ["## Stable Diffusion on the GPU: diffusers vs the engine's fast paths", "",
             f"{env.get('gpu', '?')}, driver {env.get('driver', '?')}, CUDA {env.get('cuda', '?')}, "
             f"torch {env.get('torch', '?')}, diffusers {env.get('diffusers', '?')}, transformers "
             f"{env.get('transformers', '?')}, {env.get('date_utc', '?')}. Random weights with the real shapes "
             "(`bench/sd_shapes.py`), both sides sharing the same modules, in one process; warm-up excluded, "
             "medians of several runs.", "", f"Command: `{env.get('command', '?')}`"]
    tests = results.get("tests")
    if tests:
        lines.append(f"GPU tests in the same run: `{tests['command']}` → {tests['summary']}")
    if "sd15" in results:
        lines += [""] + _sd15(results["sd15"])
    if "sdxl" in results:
        lines += [""] + _sdxl(results["sdxl"])
    if results.get("notes"):
        lines += ["", "### Notes", ""] + [f"- {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


def write_doc(results: dict, doc: Path = DOC) -> None:
    """Replace (or append) the section between the sd-gpu markers; nothing else in the file changes."""
    from bench.doc_section import write_section

    write_section(f"{START}\n{render(results)}{END}", START, END, doc)
