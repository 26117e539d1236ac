"""The numeric fields people type (command line and TUI alike): scales, sizes, whole numbers.

Each parser returns values or raises a one-line ``UserError`` naming the fix; range checks stay with
``SampleSettings.validate`` and the sampler.
"""

from __future__ import annotations

from core.errors import UserError

#: torch.compile modes that leave CUDA graphs to us (Inductor's own would nest inside our capture);
#: here, without torch, so the CLI and the settings file can offer them (core.fast, core.fashion use them)
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")


def is_fraction(value) -> bool:
    """A real number strictly between 0 and 1 (not a bool, not NaN): e.g. the refiner's share."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1


def check_compile_mode(mode: str | None) -> str:
    """``mode`` if it is one of ``COMPILE_MODES``, ``""`` for none, else a one-line ``UserError``."""
    if mode and mode not in COMPILE_MODES:
        raise UserError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_MODES)}: pick one, or leave it off.")
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
