"""The values people type (command line and TUI alike): seeds, texts, sizes, SDXL pairs, whole numbers.

Each parser returns values or raises a one-line ``UserError`` naming the fix; range checks stay with
``SampleSettings.validate`` and the sampler (guidance scales: ``core.guidance.check_scale``). No torch.
"""

from __future__ import annotations

from .errors import UserError

#: seeds: what torch.Generator.manual_seed takes (64 bits)
MAX_SEED = 2**64 - 1

#: torch.compile modes that leave CUDA graphs to us (Inductor's own would nest inside our capture);
#: here, without torch, so the CLI and the settings file can offer them (core.fast, core.fashion use them)
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")
#: what ``--compile`` and the settings file take: "off", or a mode (the app compiles "default" in the background
#: when none is given; the headless commands compile only when a mode is given)
COMPILE_CHOICES = ("off", *COMPILE_MODES)


def is_fraction(value) -> bool:
    """A real number strictly between 0 and 1 (not a bool, not NaN): e.g. the refiner's share."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1


def check_seed(seed, what: str = "seed") -> int:
    """A seed torch accepts (0 to 2^64-1), or a one-line ``UserError``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        shown = str(seed) if len(str(seed)) <= 24 else str(seed)[:24] + "…"
        raise UserError(f"{what} must be a whole number from 0 to 2^64-1 (got {shown}): e.g. 0 or 42.")
    return seed


def check_text(text, what: str = "the prompt") -> str:
    """Text that can be tokenized: a ``str`` that is valid Unicode (a non-UTF-8 argument or file is not)."""
    if not isinstance(text, str):
        raise UserError(f"{what} must be text, not {type(text).__name__}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{what} is not valid UTF-8 text: retype it, or save the file as UTF-8.") from None
    return text


def check_whole(value, what: str, low: int, high: int, example: int | None = None) -> int:
    """A whole number from ``low`` to ``high`` (counts: images, epochs, limits), or a one-line ``UserError``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        hint = f": e.g. {example}" if example is not None else ""
        raise UserError(f"{what} must be a whole number from {low} to {high} (got {value}){hint}.")
    return value


def check_compile_mode(mode: str | None) -> str:
    """``mode`` if it is one of ``COMPILE_MODES``, ``""`` for none (``"off"``, ``""``, None), else a one-line
    ``UserError``."""
    if mode == "off":
        return ""
    if mode and mode not in COMPILE_MODES:
        raise UserError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_CHOICES)}: pick one, or leave it off.")
    return mode or ""


def parse_scales(text: str) -> list[float]:
    """``"1, 2, 4, 12"`` (commas, spaces or semicolons) -> ``[1.0, 2.0, 4.0, 12.0]``."""
    items = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    if not items:
        raise UserError("the scale list is empty: write numbers separated by commas, e.g. 1,2,4,12.")
    try:
        return [float(p) for p in items]
    except ValueError:
        raise UserError(f"scales {text!r}: write numbers separated by commas, e.g. 1,2,4,12.") from None


def parse_size(text: str) -> tuple[int | None, int | None]:
    """``""`` (the model's own size), ``"512"`` or ``"512x768"`` -> (width, height)."""
    text = text.strip().lower()
    if not text:
        return None, None
    parts = text.replace("×", "x").replace("*", "x").split("x")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2):
        raise UserError(f"size {text!r} is not WIDTHxHEIGHT: use e.g. 512x512 (or nothing for the model's size).")
    return (sides[0], sides[-1])


def parse_int(text: str, what: str, example: str) -> int:
    """A whole number typed in a field called ``what``."""
    try:
        return int(text.strip())
    except ValueError:
        raise UserError(f"{what} {text!r} is not a whole number: e.g. {example}.") from None


def parse_point(text: str, what: str = "--at") -> tuple[int, int]:
    """``"40,24"`` -> ``(40, 24)``: an image pixel, X then Y, whole numbers from 0 (the image's size is
    checked where it is known: ``core.pixel_attention.check_pixel``)."""
    parts = text.replace(" ", "").split(",")
    try:
        x, y = (int(p) for p in parts)
    except ValueError:
        shown = text if len(text) <= 24 else text[:24] + "…"
        raise UserError(f"{what} {shown!r} is not X,Y: give a pixel of the image as two whole numbers, "
                        f"e.g. {what} 32,32.") from None
    if x < 0 or y < 0:
        raise UserError(f"{what} {text!r} is outside the image: X and Y count from 0 at the top left, e.g. {what} 32,32.")
    return x, y


def parse_pairs(text: str, what: str) -> list[tuple[int, int]]:
    """``"256x256,1024x1024"`` -> ``[(256, 256), (1024, 1024)]``: SDXL's original sizes and crops
    (height x width, as its time ids), each side 0 to 16384."""
    pairs = []
    for item in [p for p in text.replace(" ", "").split(",") if p]:
        try:
            a, b = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise UserError(f"{what} {item!r} is not AxB: use e.g. 256x256,1024x1024.") from None
        if a < 0 or b < 0 or a > 16384 or b > 16384:
            raise UserError(f"{what} {item!r} is out of range: use values from 0 to 16384.")
        pairs.append((a, b))
    if not pairs:
        raise UserError(f"the {what} list is empty: give at least one value, e.g. 256x256,1024x1024.")
    return pairs
