"""Pictures of samples: PIL conversion and a captioned class grid (saved through ``core.outputs.save_png``)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw



def to_pil(image: torch.Tensor) -> Image.Image:
    """One ``[1, H, W]`` (or ``[H, W]``) float image in [0, 1] -> grayscale PIL image."""
    arr = image.detach().float().clamp(0, 1).squeeze().cpu().numpy()
    return Image.fromarray(np.round(arr * 255).astype(np.uint8), mode="L")


def class_grid(images: torch.Tensor, labels: Sequence[int], names: Sequence[str], per_row: int,
               scale: int = 3, caption_width: int = 90) -> Image.Image:
    """Rows of ``per_row`` samples, each row captioned with its class (``images`` class-major)."""
    cell = images.shape[-1] * scale
    rows = (len(images) + per_row - 1) // per_row
    grid = Image.new("L", (caption_width + per_row * cell, rows * cell), color=255)
    draw = ImageDraw.Draw(grid)
    for k, img in enumerate(images):
        r, c = divmod(k, per_row)
        grid.paste(to_pil(img).resize((cell, cell), Image.NEAREST), (caption_width + c * cell, r * cell))
        if c == 0:
            label = int(labels[k])
            draw.text((4, r * cell + cell // 2 - 6), f"{label} {names[label]}", fill=0)
    return grid
