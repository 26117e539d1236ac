"""Pictures and numbers for the training pane, computed on the worker (no Textual here).

``sample_grid`` lays out per-class samples (classes across, samples down); ``noising_strip`` is
the chapter's figure: one training image noised at 8 timesteps from 0 to 999.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from PIL import Image

from core.errors import UserError


def ema(values: list[float], alpha: float = 0.1) -> list[float]:
    """Exponential moving average (the smoothed loss curve)."""
    out, acc = [], None
    for v in values:
        acc = v if acc is None else (1 - alpha) * acc + alpha * v
        out.append(acc)
    return out


def fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def tile(images: np.ndarray, cols: int, pad: int = 1) -> Image.Image:
    """``[N, H, W]`` floats in [0, 1] -> one grayscale PIL image, ``cols`` per row, ``pad`` px gaps."""
    n, h, w = images.shape
    rows = -(-n // cols)
    canvas = np.zeros((rows * (h + pad) - pad, cols * (w + pad) - pad), dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = img
    return Image.fromarray((np.clip(canvas, 0, 1) * 255).round().astype(np.uint8), mode="L")


def sample_grid(fm, model, per_class: int, steps: int, cancel: threading.Event | None, seed: int = 0,
                grey: tuple[float, float] | None = None) -> Image.Image:
    """``per_class`` samples of each of the 10 classes: columns are classes, rows are samples.

    ``grey``: (target level, scale) for loss guidance towards a grey level (the chapter's exercise 9)."""
    target, scale = grey if grey else (None, 0.0)
    x = fm.generate_from_class(model, list(range(10)), n=per_class, steps=steps, seed=seed, cancel=cancel,
                               color_target=target, color_scale=scale)
    arr = x.float().cpu().numpy()[:, 0]  # [10*n, 32, 32], class-major
    arr = arr.reshape(10, per_class, *arr.shape[1:]).transpose(1, 0, 2, 3).reshape(-1, *arr.shape[1:])
    return tile(arr, cols=10)


def parse_grey(text: str) -> tuple[float, float] | None:
    """``""`` (off) or ``"LEVEL,SCALE"`` like ``1,30`` (towards white) -> (level, scale)."""
    if not text.strip():
        return None
    try:
        level, scale = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise UserError(f"grey guidance {text!r}: write LEVEL,SCALE with LEVEL 0-1, e.g. 1,30 (or leave it empty).") from None
    if not (0 <= level <= 1 and scale >= 0):
        raise UserError(f"grey guidance {text!r}: LEVEL must be 0-1 and SCALE >= 0, e.g. 1,30.")
    return level, scale


def noising_strip(fm, data_source: str | None, n: int = 8) -> Image.Image | None:
    """The first training image noised at ``linspace(0, 999, n)``; None when no data is reachable."""
    try:
        data = fm.load_fashion_mnist(data_source)
    except UserError:  # no data here (offline, no folder): the pane simply leaves the row empty
        return None
    images, _ = fm.noising_row(data.images[0], n=n)
    return tile(images.float().cpu().numpy()[:, 0], cols=n)
