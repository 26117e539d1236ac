"""Sharper images where the terminal can show them: Kitty's graphics protocol or Sixel, through
the optional ``textual-image`` package; rich-pixels half-block cells everywhere else.

Opt in with ``graphics = "auto"`` in the config file. The terminal is queried once, before Textual
starts (it cannot be queried afterwards). Under tmux, without a terminal on stdout, without the
package, or when the terminal answers neither protocol, the app keeps its half-block cells.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Mapping

MODES = ("cells", "auto")


def choose_image_widget(mode: str, environ: Mapping[str, str] | None = None, stdout=None):
    """The ``textual_image`` widget class to draw images with, or None for half-block cells."""
    environ = os.environ if environ is None else environ
    stdout = sys.__stdout__ if stdout is None else stdout
    if mode != "auto":
        return None
    if environ.get("TMUX") or environ.get("TERM", "").startswith(("screen", "tmux")):
        return None  # multiplexers need extra set-up for pass-through; cells always work
    if stdout is None or not stdout.isatty():
        return None
    if importlib.util.find_spec("textual_image") is None:
        return None
    import textual_image.renderable as renderables  # queries the terminal, once
    import textual_image.widget as widgets

    if renderables.Image is renderables.SixelImage:
        return widgets.SixelImage
    if renderables.Image is renderables.TGPImage:
        return widgets.TGPImage
    return None
