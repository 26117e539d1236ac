"""Writing results: PNGs with their settings inside, grids with captions, atomically, never overwriting.

A file is written to a temporary name in the target folder, then hard-linked to the first free
numbered name (``sweep-0001.png``, ``sweep-0002.png`` …) by ``core.atomic``. A link never replaces an
existing file, so two instances writing to one folder cannot overwrite each other, and a crash leaves no
half-written PNG.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from . import atomic
from .errors import UserError


def default_output_dir() -> Path:
    return Path(os.environ.get("SD_EXPLORER_OUT", "outputs"))


def safe_stem(text: str, limit: int = 40) -> str:
    """A file-name stem from free text (a prompt): no separators, no dots, no escaping the folder."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_").lower()[:limit].strip("-_")
    return stem or "image"


def write_new(out_dir: Path | str, stem: str, suffix: str, writer) -> Path:
    """Call ``writer(path)`` on a temp file in ``out_dir``, then publish it as ``<stem>-NNNN<suffix>``."""
    return atomic.write_new(out_dir, atomic.numbered(safe_stem(stem), suffix), writer)


def save_png(image: Image.Image, out_dir: Path | str, stem: str, parameters: str | None = None) -> Path:
    """Save ``image`` as a new PNG, with ``parameters`` in the A1111 ``parameters`` text chunk."""
    info = PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    return write_new(out_dir, stem, ".png", lambda p: image.save(p, format="PNG", pnginfo=info))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def make_grid(images: list[Image.Image], captions: list[str] | None = None, cols: int | None = None,
              min_cell: int = 128, x_labels: list[str] | None = None, y_labels: list[str] | None = None
              ) -> Image.Image:
    """Images side by side (upscaled to at least ``min_cell`` px), each with its caption underneath.

    A two-axis grid (``x_labels``, ``y_labels``: A1111's X/Y plot) labels its columns along the top and
    its rows down the left instead."""
    if not images:
        raise UserError("nothing to put in a grid.")
    cols = len(x_labels) if x_labels else (cols or len(images))
    rows = -(-len(images) // cols)
    w, h = images[0].size
    zoom = max(1, -(-min_cell // max(w, h)))
    cw, ch = w * zoom, h * zoom
    band = 22 if captions else 0
    font = _font(14)
    top = 24 if x_labels else 0
    left = 8 + max((int(font.getlength(t)) for t in y_labels), default=0) if y_labels else 0
    grid = Image.new("RGB", (left + cols * cw, top + rows * (ch + band)), "white")
    draw = ImageDraw.Draw(grid)
    for c, text in enumerate(x_labels or []):
        draw.text((left + c * cw + cw // 2, top // 2), text, fill="black", font=font, anchor="mm")
    for r, text in enumerate(y_labels or []):
        draw.text((left - 4, top + r * (ch + band) + ch // 2), text, fill="black", font=font, anchor="rm")
    for i, img in enumerate(images):
        x, y = left + (i % cols) * cw, top + (i // cols) * (ch + band)
        grid.paste(img.convert("RGB").resize((cw, ch), Image.NEAREST), (x, y))
        if captions:
            draw.text((x + cw // 2, y + ch + band // 2), captions[i], fill="black", font=font, anchor="mm")
    return grid


def result_grid(result) -> Image.Image:
    """A ``GenerationResult``'s images as one picture: axis labels for a two-axis grid, captions otherwise."""
    if getattr(result, "grid", None) is not None:
        layout = result.grid
        return make_grid(result.images, x_labels=layout.x_labels, y_labels=layout.y_labels or None)
    return make_grid(result.images, result.captions)
