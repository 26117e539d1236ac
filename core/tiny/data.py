"""Fashion-MNIST for the tiny model: IDX files in (``core.fashion.data``), 64x64 RGB tensors in [-1, 1] out.

A 28x28 image is padded 2 px on every side (as the chapter does, 28 -> 32), upsampled x2 to 64x64
(bilinear) and repeated in 3 channels, so the VAE sees SD's input layout (3 channels, /8 -> 8x8).
``to_fashion`` undoes it for a Fashion-MNIST classifier (1x32x32 in [-1, 1]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..fashion.data import FashionData, load_idx_folder

HELD_OUT = 1024


def load_fashion(folder: Path | str) -> FashionData:
    """Fashion-MNIST's training split from a folder of IDX files (``core.fashion.data``'s one reader)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--data {folder}: no such folder; pass the folder with Fashion-MNIST's IDX files.")
    return load_idx_folder(folder, "train")


def to_model_images(images: np.ndarray):
    """``uint8 [N, 28, 28]`` (numpy or tensor, any device) -> float tensor ``[N, 3, 64, 64]`` in [-1, 1] (pad 2, upsample x2, RGB)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    x = images.float().div(127.5).sub(1.0)[:, None]
    x = F.pad(x, (2, 2, 2, 2), value=-1.0)
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return x.clamp(-1, 1).expand(-1, 3, -1, -1).contiguous()


def to_fashion(images):
    """Model images ``[N, 3, 64, 64]`` in [-1, 1] -> ``[N, 1, 32, 32]`` in [-1, 1] for a classifier."""
    gray = images.float().mean(dim=1, keepdim=True)
    return F.avg_pool2d(gray, 2).clamp(-1, 1)
