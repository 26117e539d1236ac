"""Pictures and numbers for the training pane, computed on the worker (no Textual here).

``sample_grid`` lays out scored per-class samples (classes across, samples down; ``class_legend``
names the columns); ``noising_strip`` is the chapter's figure: one training image noised at 8
timesteps from 0 to 999.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ...core.errors import UserError
from ..job_results import NoisingRow, NoNoisingData


def ema(values: list[float], alpha: float = 0.1) -> list[float]:
    """Exponential moving average (the smoothed loss curve)."""
    out, acc = [], None
    for v in values:
        acc = v if acc is None else (1 - alpha) * acc + alpha * v
        out.append(acc)
    return out


def int_ticks(last: int, n: int = 4) -> list[int]:
    """Up to ``n + 1`` whole-number ticks from 0 to ``last`` (steps are counted in whole steps)."""
    if last <= 0:
        return [0]
    return sorted({round(i * last / n) for i in range(n + 1)})


#: (name, colour) of each curve: the legend is a line of its own above the chart (plotext's legend sat
#: inside the plot and covered all of its three rows at 80x24); the colours name the same in both
CURVES = (("loss", "blue"), ("smoothed", "green"), ("fidelity % (right)", "red"))


def draw_curves(plt, steps: list[int], losses: list[float], fidelity: list[tuple[int, float]]) -> None:
    """The loss (raw and smoothed, left axis) and class fidelity after each epoch (%, right axis); no title,
    axis label or legend inside the plot (``CURVES`` names them above it), so every row is the plot's."""
    plt.clear_data()
    (_, loss), (_, smoothed), (_, fid) = CURVES
    if losses:
        plt.plot(steps, losses, marker="braille", color=loss)
        plt.plot(steps, ema(losses), marker="braille", color=smoothed)
    if fidelity:
        plt.plot([s for s, _ in fidelity], [100 * f for _, f in fidelity], marker="braille", yside="right",
                 color=fid)
        plt.ylim(0, 100, yside="right")
    last = max([*steps, *(s for s, _ in fidelity), 0])
    ticks = int_ticks(last)
    plt.xticks(ticks, [str(t) for t in ticks])


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


def sample_grid(scored, rows: int | None = None) -> Image.Image:
    """A ``core.fashion.monitor.Scored``'s samples as a grid: columns are classes, ``rows`` samples down."""
    n = scored.per_class
    arr = scored.images.numpy()[:, 0]  # [10*n, 32, 32], class-major
    arr = arr.reshape(10, n, *arr.shape[1:]).transpose(1, 0, 2, 3)[: rows or n].reshape(-1, *arr.shape[1:])
    return tile(arr, cols=10)


def class_legend() -> str:
    """The grid's columns, left to right: ``T-shirt Trouser … Boot`` (short names of the ten classes)."""
    from ...core.fashion.data import CLASS_NAMES

    return " ".join(name.split("/")[0].replace("Ankle boot", "Boot") for name in CLASS_NAMES)


def fmt_fidelity(report) -> str:
    """``fidelity 35% (14/40)``: the share of samples the classifier assigns to the class asked for."""
    total = sum(report.counts)
    return f"fidelity {report.overall:.0%} ({round(report.overall * total)}/{total})"


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


def noising_strip(fm, data_source: str | None, n: int = 8) -> NoisingRow | NoNoisingData:
    """The first training image noised at ``linspace(0, 999, n)``, or why there is no data."""
    try:
        data = fm.load_fashion_mnist(data_source)
    except UserError as exc:  # no data here (offline, no folder): the pane says how to point at some
        return NoNoisingData(str(exc))
    return noising_of(fm, data, n)


def noising_of(fm, data, n: int = 8) -> NoisingRow:
    """The noising row of loaded data (a training run sends it too, so a pane that had no data shows it)."""
    images, _ = fm.noising_row(data.images[0], n=n)
    return NoisingRow(tile(images.float().cpu().numpy()[:, 0], cols=n), data.source)
