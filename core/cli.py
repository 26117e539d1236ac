"""``sd-explorer``'s command line: the TUI when no subcommand is given, headless subcommands otherwise.

    sd-explorer [--model M]                       the explorer (the TUI)
    sd-explorer generate "prompt" [-n 4]          images, with their settings inside the PNGs
    sd-explorer generate "prompt" --model SDXL --refiner REFINER [--refiner-at 0.8]   SDXL base + refiner
    sd-explorer sweep "prompt" --scales 1,2,4,12  one seed, several guidance scales, one batch
    sd-explorer latents IMAGE                     the VAE's 4 channels and the round trip
    sd-explorer tokens "prompt"                   what CLIP sees
    sd-explorer attention "a dog and a cat" --tokens dog,cat   per-token cross-attention heat maps
    sd-explorer attention "a dog and a cat" --tokens dog --at 40,24   + the words that drew pixel (40, 24)
    sd-explorer sweep "prompt" --timeline [1,10,30]            + the x0 estimate at chosen steps
    sd-explorer fashion train|sample              the class-conditional Fashion-MNIST model

Bad input prints one line naming the fix and exits with code 2; anything unexpected prints one
``internal error`` line naming the log file that holds its traceback (``core.crash``) and exits with 1.
This module is the parser and ``main``; the subcommands themselves are ``core.commands``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from .commands import cmd_attention, cmd_generate, cmd_latents, cmd_sweep, cmd_tokens
from .errors import Cancelled, UserError
from .inputs import COMPILE_CHOICES

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
    a.add_argument("--at", action="append", default=None, metavar="X,Y",
                   help="also print the prompt's tokens ranked by their heat at image pixel X,Y (0,0: top left), "
                        "the start/end tokens too; give it several times for several pixels")
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


def main(argv: list[str] | None = None, tui_launcher: Callable | None = None,
         tui_flags: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Run a subcommand, or ``tui_launcher(args)`` without one (its flags added by ``tui_flags``)."""
    from . import interrupt

    previous = interrupt.quiet()  # ctrl+c while modules load: exit 130 at once, no traceback (core.interrupt)
    try:
        return _main(argv, tui_launcher, tui_flags)
    finally:
        interrupt.restore(previous)


def _main(argv, tui_launcher, tui_flags) -> int:
    from . import streams

    streams.prepare()  # an ASCII-only locale prints escapes, not a UnicodeEncodeError
    try:
        parser = build_parser(tui_flags)
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # ctrl+c while the command line is read (the first second): no traceback
        print("sd-explorer: interrupted", file=sys.stderr)
        return 130
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        if getattr(args, "func", None) is None:
            if tui_launcher is None:
                parser.error("a command is needed here (the TUI is started by `sd-explorer` / `python -m sd_explorer.tui`)")
            from .interrupt import default

            default()  # the TUI takes ctrl+c as a key
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
    except BrokenPipeError:  # the reader went away (`| head -2`): end quietly, as other CLI tools do
        return streams.closed_early()
    except Exception as exc:  # the last-resort guard: one line, the traceback to the log file (core.crash)
        from .crash import report

        if why := streams.stream_failure(exc):
            print(f"sd-explorer: error: {why}", file=sys.stderr)
            return 2
        print(f"sd-explorer: {report(exc, context='sd-explorer ' + ' '.join(sys.argv[1:])[:200])}", file=sys.stderr)
        return 1
