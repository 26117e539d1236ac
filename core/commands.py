"""The headless subcommands (``generate``, ``sweep``, ``attention``, ``latents``, ``tokens``): each reads the
parsed flags (``core.cli.build_parser``), loads what it needs lazily, prints the files it writes to stdout
and its summary to stderr; bad input raises ``UserError`` (``core.cli.main`` prints it as one line).
"""

from __future__ import annotations

import os
import sys

from .errors import UserError
from .inputs import parse_point, parse_scales, parse_size


def _progress(total_hint: int, desc: str):
    from tqdm.auto import tqdm

    from .step_reports import without_previews

    bar = tqdm(total=total_hint, desc=desc, unit="step", disable=not sys.stderr.isatty(), leave=False)

    def on_step(info) -> None:
        bar.total = info.total
        bar.update(1)

    return bar, without_previews(on_step)  # a bar needs no image: the loop copies nothing to the host for it


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

    from .batch_rows import check_count

    settings = _settings(args, args.guidance).validate()
    count = check_count(args.count)  # before the model loads, and before any estimate of the work
    model, refiner, fraction = _load_models(args, settings)
    _say_estimate(model, settings, count, settings.guidance_scale > 1)
    bar, on_step = _progress(args.steps, "generate + refine" if refiner else "generate")
    with bar:
        result = generate(model, settings, n=args.count, callback=on_step, refiner=refiner, handoff=fraction)
    return _save_generated(args, result)


def _say_estimate(model, settings, images: int, guided: bool) -> None:
    """On a CPU, before a run of minutes: how long it will take, and how to make it quicker (``core.cost``)."""
    from .cost import before_run
    from .schedulers import check_steps

    check_steps(model, settings)  # a count the scheduler refuses is refused before the estimate, alone
    est = before_run(model, settings, images, guided)
    if est is not None:
        print(f"sd-explorer: {est.line('CPU')}", file=sys.stderr)


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
    from .grid_axes import check_axes, plan
    from .grid_run import batches, run_grid
    from .model_folder import family_before_loading
    from .timeline import Timeline

    family = family_before_loading(args.model or "tiny")
    if family is not None:  # an axis the model cannot run fails now, not after its loading
        check_axes(family, settings, [x] if y is None else [x, y])
    model, refiner, fraction = _load_models(args, settings)
    cells = plan(model, settings, x, y)
    _say_estimate(model, settings, len(cells), any(row.guided for _, row in cells))
    bar, on_step = _progress(args.steps, f"{what} + refine" if refiner else what)
    recorder = None
    if timeline:
        count = len(batches(model, cells))
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
    # columns: the steps along the top; rows: the cells down the left (what each row is, on the image itself)
    strip = make_grid(images, x_labels=captions[:len(steps)], y_labels=list(result.captions))
    text = params + "\nTimeline: x0 estimate at steps " + ", ".join(map(str, steps)) + "; rows: " + " | ".join(result.captions)
    print(save_png(strip, _out(args), f"timeline-{args.prompt}", text))


def _image_size(settings, default: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size the run's image will have: the settings', else the model's ``default`` (None: not known yet)."""
    if default is None and not (settings.width and settings.height):
        return None
    return settings.width or default[0], settings.height or default[1]


def cmd_attention(args) -> int:
    """The image, then per token its overlay and its grayscale heat map (``<token>-heat-NNNN.png``); with
    ``--at X,Y`` the prompt's tokens ranked by their heat at that pixel (``core.pixel_attention``)."""
    from .attention import generate_with_maps, heat_image, overlay
    from .model_folder import size_before_loading
    from .outputs import save_png
    from .pixel_attention import check_pixel

    words = list(dict.fromkeys(w.strip() for w in args.tokens.split(",") if w.strip()))  # a word named twice: once
    if not words:
        raise UserError("--tokens is empty: name words of the prompt, e.g. --tokens dog,cat.")
    points = list(dict.fromkeys(parse_point(text) for text in args.at or []))
    settings = _settings(args, args.guidance).validate()
    size = _image_size(settings, size_before_loading(args.model or "tiny") if points else None)
    for x, y in points if size else []:  # outside the image: before the model loads (a Hub id: after)
        check_pixel(x, y, size)
    model = _load(args)
    settings.validate(model.vae_scale_factor)
    for x, y in points:
        check_pixel(x, y, _image_size(settings, model.default_size))
    _say_estimate(model, settings, 1, settings.guidance_scale > 1)
    bar, on_step = _progress(args.steps, "attention")
    with bar:
        result, heats, layers, maps = generate_with_maps(model, settings, words, callback=on_step)
    _report_dropped(result)
    image, params = result.images[0], result.parameters(0)
    print(save_png(image, _out(args), args.prompt, params))
    for heat in heats:
        text = params + "\n" + heat.describe(layers, settings.steps)
        print(save_png(overlay(image, heat.heat[0]), _out(args), f"{heat.word}-overlay", text))
        print(save_png(heat_image(heat.heat[0], image.size), _out(args), f"{heat.word}-heat", text))
    if points:
        _print_rankings(model, settings, maps, points, image.size)
    return 0


def _print_rankings(model, settings, maps, points, image_size) -> None:
    """``--at``: per pixel, the prompt's tokens by heat there, one a line, highest first."""
    from .pixel_attention import rank_pixels
    from .tokens import breakdown

    tokens = breakdown(model.tokenizer, settings.prompt, settings.long_prompt).tokens
    for ranking in rank_pixels(maps[0], tokens, points, image_size):
        print("\n".join(ranking.lines()))


def cmd_latents(args) -> int:
    from .inputs import check_seed
    from .outputs import make_grid, save_png
    from .vae import load_image, round_trip

    seed = check_seed(0 if args.seed is None else args.seed, "--seed")  # as every other command: before any work
    image = load_image(args.image)
    model = _load(args)
    report = round_trip(model, image, seed=seed)
    stem = os.path.splitext(os.path.basename(args.image))[0]
    captions = [f"ch{i} [{lo:.2f}, {hi:.2f}]" for i, (lo, hi) in enumerate(report.channel_ranges)]
    print(save_png(report.image, _out(args), f"{stem}-input"))
    print(save_png(make_grid(report.channels, captions), _out(args), f"{stem}-latents"))
    print(save_png(report.reconstruction, _out(args), f"{stem}-roundtrip"))
    print(report.sizes_text())
    print(f"round trip PSNR: {report.psnr:.2f} dB")
    return 0


def cmd_tokens(args) -> int:
    """The token table; a prompt with edits (``[from:to:when]``) one table per segment, over generate's
    default step count (``core.tokens.DEFAULT_STEPS``)."""
    from .model_folder import resolve_tokenizer
    from .prompt_editing import parse_edits
    from .tokens import DEFAULT_STEPS, breakdown

    parse_edits(args.prompt)  # a bad edit: one line, before the tokenizer loads
    result = breakdown(resolve_tokenizer(args.model or "tiny"), args.prompt, args.long_prompt, DEFAULT_STEPS)
    if not result.segments:
        _print_tokens(result)
        return 0
    print(f"prompt edits over {result.steps} steps (generate's default --steps):")
    for seg in result.segments:
        print(f"\n{seg.label} of {result.steps}: {seg.segment.text!r}")
        _print_tokens(seg.tokens)
    return 0


def _print_tokens(result) -> None:
    from .tokens import piece_texts

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
