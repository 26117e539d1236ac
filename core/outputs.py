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

from core import atomic
from core.errors import UserError


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
              min_cell: int = 128) -> Image.Image:
    """Images side by side (upscaled to at least ``min_cell`` px), each with its caption underneath."""
    if not images:
        raise UserError("nothing to put in a grid.")
    cols = cols or len(images)
    rows = -(-len(images) // cols)
    w, h = images[0].size
    zoom = max(1, -(-min_cell // max(w, h)))
    cw, ch = w * zoom, h * zoom
    band = 22 if captions else 0
    grid = Image.new("RGB", (cols * cw, rows * (ch + band)), "white")
    draw, font = ImageDraw.Draw(grid), _font(14)
    for i, img in enumerate(images):
        x, y = (i % cols) * cw, (i // cols) * (ch + band)
        grid.paste(img.convert("RGB").resize((cw, ch), Image.NEAREST), (x, y))
        if captions:
            draw.text((x + cw // 2, y + ch + band // 2), captions[i], fill="black", font=font, anchor="mm")
    return grid
