"""Fashion-MNIST for the tiny model: IDX files in, 64x64 RGB tensors in [-1, 1] out.

A 28x28 image is padded 2 px on every side (as the chapter does, 28 -> 32), upsampled x2 to 64x64
(bilinear) and repeated in 3 channels, so the VAE sees SD's input layout (3 channels, /8 -> 8x8).
``to_fashion`` undoes it for a Fashion-MNIST classifier (1x32x32 in [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
HELD_OUT = 1024
IMAGE_STEMS = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")


@dataclass
class FashionData:
    """Images ``uint8 [N, 28, 28]`` and labels ``int64 [N]``."""

    images: np.ndarray
    labels: np.ndarray

    def split(self, held_out: int = HELD_OUT) -> tuple[FashionData, FashionData]:
        """(train, held-out): the last ``held_out`` examples are kept for evaluation."""
        if not 0 < held_out < len(self.labels):
            raise UserError(f"--held-out {held_out} must be between 1 and {len(self.labels) - 1} for {len(self.labels)} images.")
        cut = len(self.labels) - held_out
        return (FashionData(self.images[:cut], self.labels[:cut]),
                FashionData(self.images[cut:], self.labels[cut:]))


def read_idx(path: Path | str, magic: int) -> np.ndarray:
    """One IDX file (gzip or plain) with the expected ``magic`` number, as a uint8 array: the Fashion
    reader's (``core.fashion.data.read_idx_file``: header checked first, body streamed, bombs refused)."""
    from core.fashion.data import read_idx_file

    return read_idx_file(path, magic)


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise UserError(f"{folder} has no {stem}(.gz): pass the folder with Fashion-MNIST's IDX files.")


def load_fashion(folder: Path | str) -> FashionData:
    """Read ``train-images-idx3-ubyte(.gz)`` + ``train-labels-idx1-ubyte(.gz)`` from ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--data {folder}: no such folder; pass the folder with Fashion-MNIST's IDX files.")
    images = read_idx(_find(folder, "train-images-idx3-ubyte"), 2051)
    labels = read_idx(_find(folder, "train-labels-idx1-ubyte"), 2049)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise UserError(f"{folder}: {images.shape} images vs {labels.shape} labels: the files do not belong together.")
    if labels.max() > 9:
        raise UserError(f"{folder}: labels go up to {labels.max()}; Fashion-MNIST has 10 classes (0-9).")
    return FashionData(images.copy(), labels.astype(np.int64))


def to_model_images(images: np.ndarray):
    """``uint8 [N, 28, 28]`` (numpy or tensor, any device) -> float tensor ``[N, 3, 64, 64]`` in [-1, 1] (pad 2, upsample x2, RGB)."""
    import torch
    import torch.nn.functional as F

    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    x = images.float().div(127.5).sub(1.0)[:, None]
    x = F.pad(x, (2, 2, 2, 2), value=-1.0)
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return x.clamp(-1, 1).expand(-1, 3, -1, -1).contiguous()


def to_fashion(images):
    """Model images ``[N, 3, 64, 64]`` in [-1, 1] -> ``[N, 1, 32, 32]`` in [-1, 1] for a classifier."""
    import torch.nn.functional as F

    gray = images.float().mean(dim=1, keepdim=True)
    return F.avg_pool2d(gray, 2).clamp(-1, 1)
