"""Sharper images where the terminal can show them: Kitty's graphics protocol or Sixel, through
the optional ``textual-image`` package; rich-pixels half-block cells everywhere else.

``graphics`` in the config file picks the renderer: ``cells`` (half blocks, the default, works
everywhere), ``auto`` (Sixel or Kitty if the terminal answers the query, else cells), or ``sixel`` /
``kitty`` to force one protocol (e.g. tmux 3.4+ built with Sixel). The terminal is queried once,
before Textual starts (it cannot be queried afterwards). ``auto`` keeps the half-block cells under
tmux or screen (``$TMUX``, ``TERM=screen*``/``tmux*``: pass-through needs extra set-up), without a
terminal on stdout, or without the package; a forced protocol still needs both of the latter.

``f8`` (or the palette's "Graphics: next mode") switches the mode while the app runs (``next_mode``);
the first switch that needs the terminal's answer asks it while Textual is suspended (``needs_query``),
and ``describe`` says in one line what is now in use, and why half blocks when they are.

Kitty graphics go through ``tui.widgets.kitty`` (textual-image's renderer, freeing what it uploads); a
terminal that answers the Kitty query is also asked its version (XTVERSION) at that moment, and ``auto``
keeps the half blocks in a kitty older than 0.28, which cannot show the placeholder cells they are drawn with.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import sys
from typing import Mapping

try:  # the terminal's size in pixels (POSIX)
    import fcntl
    import termios
except ImportError:  # pragma: no cover - Windows: the cell size asked at start-up stays
    fcntl = termios = None

from . import kitty
from .sixel import sixel_widget

MODES = ("cells", "auto", "sixel", "kitty")

#: pixels per terminal cell when the terminal does not say (xterm's default font is close)
DEFAULT_CELL_PIXELS = (10, 20)


def in_multiplexer(environ: Mapping[str, str]) -> bool:
    """True inside tmux or GNU screen, whose pass-through of image protocols needs set-up."""
    return bool(environ.get("TMUX")) or environ.get("TERM", "").startswith(("screen", "tmux"))


def choose_image_widget(mode: str, environ: Mapping[str, str] | None = None, stdout=None):
    """The ``textual_image`` widget class to draw images with, or None for half-block cells."""
    environ = os.environ if environ is None else environ
    stdout = sys.__stdout__ if stdout is None else stdout
    if mode not in ("auto", "sixel", "kitty"):
        return None
    if mode == "auto" and in_multiplexer(environ):
        return None
    if stdout is None or not stdout.isatty():
        return None
    if importlib.util.find_spec("textual_image") is None:
        return None
    first = "textual_image.renderable" not in sys.modules
    import textual_image.renderable as renderables  # queries the terminal, once
    import textual_image.widget  # noqa: F401 - asks the cell size while the terminal can still answer

    kitty_answered = renderables.Image is renderables.TGPImage
    if first and (kitty_answered or mode == "kitty"):
        kitty.ask_version()  # still before Textual (or while it is suspended), as the query above
    if mode == "sixel" or (mode == "auto" and renderables.Image is renderables.SixelImage):
        return sixel_widget()
    if mode == "kitty" or (mode == "auto" and kitty_answered and not kitty.missing_placeholders()):
        return kitty.kitty_widget()
    return None


def next_mode(mode: str) -> str:
    """The mode after ``mode`` in ``MODES`` (cells -> auto -> sixel -> kitty -> cells)."""
    return MODES[(MODES.index(mode) + 1) % len(MODES)] if mode in MODES else MODES[0]


def needs_query(mode: str, environ: Mapping[str, str] | None = None, stdout=None) -> bool:
    """True when ``choose_image_widget(mode)`` would import ``textual_image`` for the first time, which asks
    the terminal: only possible before Textual starts or while it is suspended."""
    environ = os.environ if environ is None else environ
    stdout = sys.__stdout__ if stdout is None else stdout
    if mode not in ("auto", "sixel", "kitty") or (mode == "auto" and in_multiplexer(environ)):
        return False
    if stdout is None or not stdout.isatty() or importlib.util.find_spec("textual_image") is None:
        return False
    return "textual_image.renderable" not in sys.modules


def describe(mode: str, widget: type | None, environ: Mapping[str, str] | None = None, stdout=None) -> str:
    """One line: the mode asked for and the renderer now in use (with why, for half blocks)."""
    if widget is not None:
        name = "Kitty graphics" if "TGP" in widget.__name__ else "Sixel"
        if mode == "auto":
            return f"graphics = auto: {name}"
        answered = sys.modules.get("textual_image.renderable")
        if name == "Kitty graphics" and kitty.missing_placeholders():
            return f"graphics = {mode}: {name} (forced; {kitty.missing_placeholders()}: boxes show, f8 goes on)"
        if answered is not None and answered.Image is not getattr(answered, widget.__name__, None):
            return f"graphics = {mode}: {name} (forced; the terminal did not answer for it: f8 goes on)"
        return f"graphics = {mode}: {name} (forced)"
    if mode == "cells":
        return "graphics = cells: half-block cells"
    environ = os.environ if environ is None else environ
    stdout = sys.__stdout__ if stdout is None else stdout
    if mode == "auto" and in_multiplexer(environ):
        why = "inside tmux/screen; sixel forces Sixel on tmux 3.4+"
    elif stdout is None or not stdout.isatty():
        why = "no terminal on stdout"
    elif importlib.util.find_spec("textual_image") is None:
        why = "pip install textual-image for Sixel/Kitty"
    elif mode == "auto" and kitty.missing_placeholders():
        why = f"{kitty.missing_placeholders()}; graphics = kitty forces them"
    else:
        why = "the terminal answered neither Sixel nor Kitty"
    return f"graphics = {mode}: half-block cells ({why})"


def cell_pixels_now() -> tuple[int, int] | None:
    """Pixels per cell from the terminal's window size in pixels right now (``TIOCGWINSZ``), or None where
    the terminal does not fill them in (or there is no terminal, or no ``termios``)."""
    if termios is None or sys.__stdout__ is None:
        return None
    try:
        winsize = fcntl.ioctl(sys.__stdout__.fileno(), termios.TIOCGWINSZ, bytes(8))
        rows, cols, width, height = struct.unpack("HHHH", winsize)
    except (OSError, ValueError):
        return None
    return (width // cols, height // rows) if rows and cols and width >= cols and height >= rows else None


def cell_pixels() -> tuple[int, int]:
    """Pixels per terminal cell (width, height): as the terminal's window size says now, else as the terminal
    reported them before start-up. A font change alters them (kitty's ctrl+shift+=): textual-image's own
    figure, asked once at start-up, is brought up to date too, as its renderers scale pictures with it."""
    try:
        from textual_image._terminal import get_cell_size

        size = get_cell_size()  # cached by textual_image.widget's import
    except Exception:  # noqa: BLE001 - no package, no terminal: the default is a fine guess
        return DEFAULT_CELL_PIXELS
    now = cell_pixels_now()
    if now is not None and now != (size.width, size.height) and hasattr(get_cell_size, "_result"):
        get_cell_size._result = type(size)(*now)
        return now
    return (size.width, size.height) if size.width > 0 and size.height > 0 else DEFAULT_CELL_PIXELS
