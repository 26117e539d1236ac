"""``sd-explorer``'s command line: the TUI when no subcommand is given, headless subcommands otherwise.

    sd-explorer [--model M]                       the explorer (the TUI)
    sd-explorer generate "prompt" [-n 4]          images, with their settings inside the PNGs
    sd-explorer generate "prompt" --model SDXL --refiner REFINER [--refiner-at 0.8]   SDXL base + refiner
    sd-explorer sweep "prompt" --scales 1,2,4,12  one seed, several guidance scales, one batch
    sd-explorer latents IMAGE                     the VAE's 4 channels and the round trip
    sd-explorer tokens "prompt"                   what CLIP sees
    sd-explorer attention "a dog and a cat" --tokens dog,cat   per-token cross-attention heat maps
    sd-explorer sweep "prompt" --timeline [1,10,30]            + the x0 estimate at chosen steps
    sd-explorer fashion train|sample              the class-conditional Fashion-MNIST model

Bad input prints one line naming the fix and exits with code 2; anything unexpected prints one
``internal error`` line naming the log file that holds its traceback (``core.crash``) and exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from .errors import Cancelled, UserError
from .inputs import COMPILE_CHOICES, parse_scales, parse_size

GRID_AXES = ("scale", "seed", "steps", "scheduler", "negative", "prompt_sr", "original_size", "crop", "strength",
             "long_prompt", "color_scale")  #: core.grid_axes.KINDS (kept here so --help needs no torch)
SCHEDULER_HELP = "DDPM, DDIM, PNDM, Euler, 'Euler ancestral', 'DPM++ 2M', LMS (default: the model's own)"


def _common(suppress: bool) -> argparse.ArgumentParser:
    """Options every command takes; on subcommands they default to 'not given' so the top level's stay."""
    p = argparse.ArgumentParser(add_help=False)
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--model", default=d(None), help="tiny (default; it knows only greyscale Fashion-MNIST clothing: "
                   "'a photo of an ankle boot'), a local diffusers folder, or a Hub id")
    p.add_argument("--vae", default=d(None), help="swap the VAE: a folder or Hub id (e.g. stabilityai/sd-vae-ft-ema)")
    p.add_argument("--device", default=d(None), help="cuda, cuda:N, mps or cpu (default: the best available)")
    p.add_argument("--dtype", default=d(None), choices=["fp32", "fp16", "bf16"], help="default fp16 on GPUs, fp32 on CPU")
    p.add_argument("--seed", type=int, default=d(None), help="random seed (default 0, or the settings file's)")
    p.add_argument("--out", default=d(None), help="output folder (default ./outputs)")
    p.add_argument("--offline", action="store_true", default=d(False), help="never touch the network (as HF_HUB_OFFLINE=1)")
    p.add_argument("--compile", default=d(None), choices=COMPILE_CHOICES,
                   help="CUDA: torch.compile the UNet under its CUDA graphs. Commands: off unless a mode is given (the "
                        "first run per size compiles for a minute, a later one in seconds from the cache); the app: "
                        "'default' in the background unless 'off'")
    return p


def _sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--negative", default="", help="negative prompt (replaces the unconditional \"\")")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--scheduler", default=None, help=SCHEDULER_HELP)
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT, multiples of 8 (default: the model's size)")
    p.add_argument("--init-image", default=None, metavar="PATH", help="image-to-image: start from this image")
    p.add_argument("--strength", type=float, default=0.8, help="image-to-image: how much to change (0-1]")
    p.add_argument("--color", default=None, help="colour-loss guidance target, e.g. '#3060ff'")
    p.add_argument("--color-scale", type=float, default=0.0, help="colour-loss guidance strength (0 = off)")
    _long_prompt(p)


def _long_prompt(p: argparse.ArgumentParser) -> None:
    from .chunks import MODES

    p.add_argument("--long-prompt", default="chunk", choices=MODES,
                   help="past 75 tokens: chunk (75-token chunks, as A1111/ComfyUI; default) or truncate (as diffusers)")


def add_refiner_flags(p: argparse.ArgumentParser) -> None:
    """``--refiner`` and ``--refiner-at``: ``generate`` and ``sweep`` take them, and the explorer
    (``tui.entry.add_flags``) for its sweeps."""
    p.add_argument("--refiner", default=None, metavar="FOLDER_OR_ID",
                   help="SDXL refiner (folder or Hub id): the base denoises to --refiner-at, the refiner finishes")
    p.add_argument("--refiner-at", type=float, default=None, metavar="F",
                   help="with --refiner: the base's share of the schedule, between 0 and 1 (default 0.8)")


def build_parser(explorer_flags: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.ArgumentParser:
    """The command line; ``explorer_flags(parser)`` adds the flags only the TUI reads (``tui.entry``)."""
    parser = argparse.ArgumentParser(
        prog="sd-explorer", parents=[_common(False)],
        description="Explore how Stable Diffusion works. Without a COMMAND it opens the explorer (a terminal UI); "
                    "with one it works headless. Bad input: one line naming the fix, exit code 2. The shipped model "
                    "(--model tiny) was trained only on greyscale Fashion-MNIST clothing: prompts such as 'a photo "
                    "of a sneaker' or 'a pair of trousers' work, anything else gives arbitrary clothing; the "
                    "chapter's prompts need a real Stable Diffusion model (--model).")
    if explorer_flags is not None:
        explorer_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common(True)

    g = sub.add_parser("generate", parents=[common], help="generate images from a prompt")
    _sampling(g)
    g.add_argument("--guidance", type=float, default=7.5, help="guidance scale; <= 1 means no CFG")
    g.add_argument("-n", "--count", type=int, default=1)
    add_refiner_flags(g)
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("sweep", parents=[common],
                       help="one seed, several guidance scales (or negative prompts, strengths, ...) as one grid")
    _sampling(s)
    s.add_argument("--scales", default="1,2,4,12", help="comma-separated guidance scales (default the chapter's)")
    s.add_argument("--guidance", type=float, default=7.5, help="the fixed scale when another axis is swept")
    add_refiner_flags(s)
    axis = s.add_mutually_exclusive_group()
    axis.add_argument("--negatives", default=None, help="sweep negative prompts instead: 'a|white hat|hat'")
    axis.add_argument("--original-sizes", default=None, help="SDXL: sweep original size, e.g. 256x256,1024x1024")
    axis.add_argument("--crops", default=None, help="SDXL: sweep crop top-left (y x x), e.g. 0x0,256x0")
    axis.add_argument("--strengths", default=None, help="image-to-image: sweep strength, e.g. 0.3,0.6,0.9")
    axis.add_argument("--color-scales", default=None, help="sweep colour-loss scale, e.g. 0,50,200")
    s.add_argument("--timeline", nargs="?", const="", default=None, metavar="STEPS",
                   help="also write a strip of each cell's x0 estimate at these 1-based steps (default: 6 spread evenly)")
    s.add_argument("--x", default=None, metavar="AXIS=VALUES",
                   help="a two-axis grid's X axis, e.g. 'scale=1-13 (+4)', 'seed=1-10 [3]', 'prompt_sr=cat|dog'; "
                        "axes: " + ", ".join(GRID_AXES))
    s.add_argument("--y", default=None, metavar="AXIS=VALUES", help="the grid's Y axis (optional), as --x")
    s.set_defaults(func=cmd_sweep)

    a = sub.add_parser("attention", parents=[common],
                       help="per-token cross-attention heat maps (DAAM): the image, and per token its overlay and heat map")
    _sampling(a)
    a.add_argument("--tokens", required=True, help="comma-separated words of the prompt, e.g. dog,cat")
    a.add_argument("--guidance", type=float, default=7.5, help="guidance scale; <= 1 means no CFG")
    a.set_defaults(func=cmd_attention)

    lat = sub.add_parser("latents", parents=[common], help="encode an image with the VAE and decode it back")
    lat.add_argument("image")
    lat.set_defaults(func=cmd_latents)

    t = sub.add_parser("tokens", parents=[common], help="show what CLIP's tokenizer makes of a prompt")
    t.add_argument("prompt")
    _long_prompt(t)
    t.set_defaults(func=cmd_tokens)
    try:
        from .fashion.cli import add_parser as add_fashion
    except ImportError:  # the Fashion-MNIST package is optional for the rest of the CLI
        add_fashion = None
    if add_fashion is not None:
        add_fashion(sub)
    return parser


def _progress(total_hint: int, desc: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=total_hint, desc=desc, unit="step", disable=not sys.stderr.isatty(), leave=False)

    def on_step(info) -> None:
        bar.total = info.total
        bar.update(1)

    return bar, on_step


def _load(args, spec: str | None = None):
    """``--model`` (or ``spec``, e.g. the refiner) on the chosen device, dtype and VAE."""
    from .models import load_model

    spec = spec or args.model or "tiny"
    print(f"loading {spec} …", file=sys.stderr)
    return load_model(spec, device=args.device, dtype=args.dtype, vae=args.vae, compile=getattr(args, "compile", None),
                      status=lambda text: print(f"sd-explorer: {text}", file=sys.stderr))


def _settings(args, guidance: float = 7.5):
    from .loss_guidance import parse_color
    from .settings import SampleSettings
    from .vae import load_image

    width, height = parse_size(args.size or "")
    return SampleSettings(prompt=args.prompt, negative_prompt=args.negative, steps=args.steps,
                          guidance_scale=guidance, seed=args.seed or 0, width=width, height=height,
                          scheduler=args.scheduler,
                          init_image=load_image(args.init_image) if args.init_image else None,
                          strength=args.strength, color_target=parse_color(args.color) if args.color else None,
                          color_scale=args.color_scale, long_prompt=args.long_prompt)


def _axis(args):
    """The axis ``sweep`` varies without ``--x`` (the guidance scale unless another flag names one): a
    one-axis grid's X axis (``core.grid_axes.Axis``)."""
    from .guidance import check_scale
    from .inputs import parse_pairs
    from .grid_axes import Axis

    if args.negatives is not None:
        return Axis("negative", [v.strip() for v in args.negatives.split("|")])
    if args.original_sizes:
        return Axis("original_size", parse_pairs(args.original_sizes, "original size"))
    if args.crops:
        return Axis("crop", parse_pairs(args.crops, "crop"))
    if args.strengths:
        return Axis("strength", parse_scales(args.strengths))
    if args.color_scales:
        return Axis("color_scale", parse_scales(args.color_scales))
    return Axis("scale", [check_scale(v) for v in parse_scales(args.scales)])


def _out(args) -> str:
    from .outputs import default_output_dir

    return args.out or str(default_output_dir())


def _report_dropped(result) -> None:
    if result.dropped_tokens:
        print(f"note: dropped (past the window or the chunks): {result.dropped_tokens!r}", file=sys.stderr)


def cmd_generate(args) -> int:
    from .sampler import generate

    settings = _settings(args, args.guidance).validate()
    model, refiner, fraction = _load_models(args, settings)
    bar, on_step = _progress(args.steps, "generate + refine" if refiner else "generate")
    with bar:
        result = generate(model, settings, n=args.count, callback=on_step, refiner=refiner, handoff=fraction)
    return _save_generated(args, result)


def _load_models(args, settings):
    """``--model``, and ``--refiner`` when given (checked before its minutes of loading): ``(model, refiner,
    handoff)``, the refiner ``None`` without one. The sampler checks the pair and the request once more."""
    from .refiner import DEFAULT_FRACTION, check_base, check_fraction, check_settings

    if args.refiner is None and args.refiner_at is None:
        return _load(args), None, DEFAULT_FRACTION
    if not args.refiner:
        raise UserError("the refiner hand-off needs --refiner REFINER: an SDXL refiner folder or Hub id.")
    fraction = check_fraction(DEFAULT_FRACTION if args.refiner_at is None else args.refiner_at)
    check_settings(settings)
    model = _load(args)
    check_base(model)  # before the refiner's minutes of loading
    return model, _load(args, args.refiner), fraction


def _save_generated(args, result) -> int:
    from .outputs import save_png

    _report_dropped(result)
    for i, image in enumerate(result.images):
        print(save_png(image, _out(args), args.prompt, result.parameters(i)))
    print(f"{len(result.images)} image(s) in {result.timings['total_s']:.2f} s", file=sys.stderr)
    return 0


def _grid_axis(text: str, flag: str):
    from .grid_axes import Axis

    name, sep, values = text.partition("=")
    if not sep:
        raise UserError(f"{flag} {text!r} is not AXIS=VALUES: write e.g. {flag} 'scale=1,4,12'.")
    return Axis.parse(name.strip(), values)


def _run_grid(args, settings, x, y, what: str, *, timeline: bool = False, on_cells=None):
    """Load the model(s) and sample the grid (``core.grid_run.run_grid``) behind a progress bar:
    ``(model, result, Timeline or None)``; ``timeline`` keeps every step of a grid of one batch."""
    from .grid_axes import plan
    from .grid_run import batches, run_grid
    from .timeline import Timeline

    model, refiner, fraction = _load_models(args, settings)
    bar, on_step = _progress(args.steps, f"{what} + refine" if refiner else what)
    recorder = None
    if timeline:
        count = len(batches(model, plan(model, settings, x, y)))
        if count > 1:
            raise UserError(f"--timeline keeps one batched run, and these values need {count} (a prompt past "
                            "75 tokens runs apart): sweep fewer or shorter values.")
        recorder = Timeline(model)
        on_step = recorder.chain(on_step)
    with bar:
        result = run_grid(model, settings, x, y, callback=on_step, on_cells=on_cells, refiner=refiner,
                          handoff=fraction)
    return model, result, recorder


def cmd_grid(args) -> int:
    """``sweep --x AXIS=VALUES [--y AXIS=VALUES]``: a two-axis grid (``core.grid_axes``)."""
    from .outputs import result_grid, save_png

    if args.x is None:
        raise UserError("--y needs an --x axis too: e.g. --x 'scale=1,4,12' --y 'seed=1,2'.")
    x = _grid_axis(args.x, "--x")
    y = _grid_axis(args.y, "--y") if args.y else None
    settings = _settings(args, args.guidance).validate()

    def on_cells(indices, result) -> None:
        print(f"cells {', '.join(str(i + 1) for i in indices)} done", file=sys.stderr)

    _, result, _ = _run_grid(args, settings, x, y, "grid", on_cells=on_cells)
    for i, image in enumerate(result.images):
        print(save_png(image, _out(args), f"{args.prompt}-cell{i + 1}", result.parameters(i)))
    print(save_png(result_grid(result), _out(args), f"grid-{args.prompt}", result.grid_parameters()))
    shape = f"{len(x.values)}x{len(y.values)}" if y else f"{len(x.values)}"
    print(f"{shape} grid ({x.name}{' x ' + y.name if y else ''}) in {result.timings['total_s']:.2f} s, "
          f"{result.timings['batches']} batch(es)", file=sys.stderr)
    return 0


def cmd_sweep(args) -> int:
    """``sweep``: one axis (``--scales``, ``--negatives``, ...) as a one-axis grid, or ``--x``/``--y``."""
    from .outputs import make_grid, save_png

    if args.x is not None or args.y is not None:
        return cmd_grid(args)
    x = _axis(args)
    settings = _settings(args, args.guidance).validate()
    if args.timeline is not None:  # bad steps fail before the model loads
        from .grid_axes import SEQUENTIAL
        from .batch_rows import MAX_SWEEP_CELLS
        from .timeline import parse_steps

        if x.name in SEQUENTIAL or args.refiner is not None or args.refiner_at is not None:
            raise UserError("--timeline keeps one batched run: use it with --scales, --negatives, --original-sizes "
                            "or --crops, without --refiner.")
        if len(x.values) > MAX_SWEEP_CELLS:
            raise UserError(f"--timeline keeps one batched run: sweep at most {MAX_SWEEP_CELLS} values.")
        parse_steps(args.timeline, settings.steps)
    model, result, timeline = _run_grid(args, settings, x, None, "sweep", timeline=args.timeline is not None)
    _report_dropped(result)
    for i, image in enumerate(result.images):
        tag = f"cfg{result.scales[i]:g}" if x.name == "scale" else f"{x.name}{i + 1}"
        print(save_png(image, _out(args), f"{args.prompt}-{tag}", result.parameters(i)))
    grid_params = result.grid_parameters()
    grid = make_grid(result.images, result.captions)
    print(save_png(grid, _out(args), f"sweep-{args.prompt}", grid_params))
    if timeline is not None:
        _save_timeline(args, model, timeline, result, grid_params)
    print(f"{len(x.values)} cells ({x.name}) in {result.timings['total_s']:.2f} s", file=sys.stderr)
    return 0


def _save_timeline(args, model, timeline, result, params: str) -> None:
    """``sweep --timeline``: one row per cell, one column per chosen step, x0 decoded by the VAE."""
    from .outputs import make_grid, save_png
    from .timeline import parse_steps

    steps = parse_steps(args.timeline, len(timeline.frames))
    images, captions = timeline.strip(model, steps)
    strip = make_grid(images, captions, cols=len(steps))
    text = params + "\nTimeline: x0 estimate at steps " + ", ".join(map(str, steps)) + "; rows: " + " | ".join(result.captions)
    print(save_png(strip, _out(args), f"timeline-{args.prompt}", text))


def cmd_attention(args) -> int:
    """The image, then per token its overlay and its grayscale heat map (``<token>-heat-NNNN.png``)."""
    from .attention import generate_with_maps, heat_image, overlay
    from .outputs import save_png

    words = [w.strip() for w in args.tokens.split(",") if w.strip()]
    if not words:
        raise UserError("--tokens is empty: name words of the prompt, e.g. --tokens dog,cat.")
    settings = _settings(args, args.guidance).validate()
    model = _load(args)
    settings.validate(model.vae_scale_factor)
    bar, on_step = _progress(args.steps, "attention")
    with bar:
        result, heats, layers = generate_with_maps(model, settings, words, callback=on_step)
    _report_dropped(result)
    image, params = result.images[0], result.parameters(0)
    print(save_png(image, _out(args), args.prompt, params))
    for heat in heats:
        text = params + "\n" + heat.describe(layers, settings.steps)
        print(save_png(overlay(image, heat.heat[0]), _out(args), f"{heat.word}-overlay", text))
        print(save_png(heat_image(heat.heat[0], image.size), _out(args), f"{heat.word}-heat", text))
    return 0


def cmd_latents(args) -> int:
    from .outputs import make_grid, save_png
    from .vae import load_image, round_trip

    image = load_image(args.image)
    model = _load(args)
    report = round_trip(model, image, seed=args.seed or 0)
    stem = os.path.splitext(os.path.basename(args.image))[0]
    captions = [f"ch{i} [{lo:.2f}, {hi:.2f}]" for i, (lo, hi) in enumerate(report.channel_ranges)]
    print(save_png(report.image, _out(args), f"{stem}-input"))
    print(save_png(make_grid(report.channels, captions), _out(args), f"{stem}-latents"))
    print(save_png(report.reconstruction, _out(args), f"{stem}-roundtrip"))
    print(report.sizes_text())
    print(f"round trip PSNR: {report.psnr:.2f} dB")
    return 0


def cmd_tokens(args) -> int:
    from .models import resolve_tokenizer
    from .tokens import breakdown, piece_texts

    result = breakdown(resolve_tokenizer(args.model or "tiny"), args.prompt, args.long_prompt)
    texts = piece_texts([tok.piece for tok in result.tokens])
    print(f"{'pos':>4}  {'id':>6}  {'piece':<24} {'text':<12} {'weight':>6}  {'count':>7}  note")
    dropped = 0
    for tok, text in zip(result.tokens, texts):
        pos = f"{tok.position:>4}"
        if tok.special:
            text = ""
            note = f"start of chunk {tok.chunk + 1}" if tok.id == result.tokens[0].id else f"end of chunk {tok.chunk + 1}"
        elif tok.dropped:  # its own numbering: the window's positions belong to the kept tokens
            dropped += 1
            pos, note = f"{'–':>4}", f"DROPPED {dropped}/{len(result.dropped)} (beyond {result.beyond})"
        else:
            note = ""
        limit = result.limit if tok.dropped else (result.window - 2) * (tok.chunk + 1)
        count = "" if tok.special else f"{tok.running}/{limit}"
        print(f"{pos}  {tok.id:>6}  {tok.piece:<24} {text:<12} {tok.weight:>6.3g}  {count:>7}  {note}".rstrip())
    print(result.summary())
    return 0


def main(argv: list[str] | None = None, tui_launcher: Callable | None = None,
         tui_flags: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Run a subcommand, or ``tui_launcher(args)`` without one (its flags added by ``tui_flags``)."""
    parser = build_parser(tui_flags)
    args = parser.parse_args(argv)
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        if getattr(args, "func", None) is None:
            if tui_launcher is None:
                parser.error("a command is needed here (the TUI is started by `sd-explorer` / `python -m sd_explorer.tui`)")
            return int(tui_launcher(args) or 0)
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"sd-explorer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Cancelled as exc:
        print(f"sd-explorer: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("sd-explorer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last-resort guard: one line, the traceback to the log file (core.crash)
        from .crash import report

        print(f"sd-explorer: {report(exc, context='sd-explorer ' + ' '.join(sys.argv[1:])[:200])}", file=sys.stderr)
        return 1
