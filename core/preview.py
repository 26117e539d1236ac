"""Cheap previews: the x0 estimate's latents mapped linearly to RGB, one pixel per latent pixel."""

from __future__ import annotations

import numpy as np
import torch


def latents_to_rgb_tensor(x0: torch.Tensor, factors: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, C, h, w]`` latents -> uint8 ``[B, h, w, 3]`` on the latents' device (no copy to the host)."""
    f = factors.to(device=x0.device, dtype=torch.float32)
    rgb = torch.einsum("bchw,cr->bhwr", x0.float(), f)
    if bias is not None:
        rgb = rgb + bias.to(rgb.device)
    rgb = ((rgb + 1) / 2).clamp(0, 1)
    return (rgb * 255).round().to(torch.uint8)


def latents_to_rgb(x0: torch.Tensor, factors: torch.Tensor, bias: torch.Tensor | None = None) -> np.ndarray:
    """``[B, C, h, w]`` latents -> uint8 ``[B, h, w, 3]`` via per-channel RGB factors ``[C, 3]``, on the host."""
    return latents_to_rgb_tensor(x0, factors, bias).cpu().numpy()
