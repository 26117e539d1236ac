"""Training batches for the tiny model: one garment at 64x64, or two side by side at 128x64.

The VAE and the UNet are convolutional, so a 128x64 image is two 64x64 images next to each other
and its 4x8x16 latent is their two 4x8x8 latents concatenated along the width (the VAE's receptive
field barely reaches across the black border between them). A pair batch therefore costs no VAE
pass: ``pair`` draws two training latents, puts them side by side, and takes a caption naming the
left garment then the right one (``core.tiny.grounding.pair_table``). Every batch carries the
garments' pixel masks for the grounding loss: ``[B, 2, 64, W]``, garment 1 (left, or the only one)
and garment 2 (right; empty for a single garment).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .grounding import CaptionTable


@dataclass
class Pool:
    """Latents of the training images and of their mirror images (``[2N, 4, 8, 8]`` mean and std),
    their labels ``[2N]`` and garment masks ``[2N, 1, 64, 64]``, all on one device."""

    mean: torch.Tensor
    std: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor

    def sample(self, idx: torch.Tensor, scaling: float) -> torch.Tensor:
        """Scaled latents drawn from the VAE's posterior of images ``idx``."""
        return (self.mean[idx] + self.std[idx] * torch.randn_like(self.mean[idx])) * scaling


@dataclass
class Batch:
    """What one training step sees: clean latents, caption rows, per-token marks and garment masks."""

    z0: torch.Tensor
    rows: torch.Tensor
    marks: torch.Tensor
    masks: torch.Tensor


def _rows(table: CaptionTable, keys: torch.Tensor, empty_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    n = keys.shape[0]
    pick = torch.randint(0, table.rows.shape[1], (n,), device=keys.device)
    rows = table.rows[keys, pick]
    rows = torch.where(torch.rand(n, device=keys.device) < empty_p, torch.full_like(rows, table.empty), rows)
    return rows, table.marks[rows]


def single(pool: Pool, table: CaptionTable, n: int, scaling: float, empty_p: float) -> Batch:
    """``n`` single garments at 64x64 with captions naming their class (``empty_p`` of them empty)."""
    idx = torch.randint(0, pool.mean.shape[0], (n,), device=pool.mean.device)
    rows, marks = _rows(table, pool.labels[idx], empty_p)
    m = pool.masks[idx]
    return Batch(pool.sample(idx, scaling), rows, marks, torch.cat([m, torch.zeros_like(m)], 1))


def pair(pool: Pool, table: CaptionTable, n: int, scaling: float, empty_p: float) -> Batch:
    """``n`` pairs at 128x64: garment ``i`` on the left, ``j`` on the right, a caption naming both."""
    device = pool.mean.device
    i = torch.randint(0, pool.mean.shape[0], (n,), device=device)
    j = torch.randint(0, pool.mean.shape[0], (n,), device=device)
    z0 = torch.cat([pool.sample(i, scaling), pool.sample(j, scaling)], dim=-1)
    rows, marks = _rows(table, pool.labels[i] * 10 + pool.labels[j], empty_p)
    left, right = pool.masks[i], pool.masks[j]
    blank = torch.zeros_like(left)
    masks = torch.cat([torch.cat([left, blank], -1), torch.cat([blank, right], -1)], 1)
    return Batch(z0, rows, marks, masks)
