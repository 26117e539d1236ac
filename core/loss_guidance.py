"""Loss guidance (the chapter's exercise 9): steer sampling with the gradient of a loss on the image.

At each step the x0 estimate is decoded and compared with a target colour,
``loss = |image - colour|.mean()``; the latents move against the loss's gradient, scaled by the current
noise level, before the scheduler steps. No training: any model, any loss. The noise prediction is
held fixed while differentiating (no backward pass through the UNet), which keeps it cheap.
"""

from __future__ import annotations

import torch

from .errors import UserError
from .vae import decode


def parse_color(text: str | tuple) -> tuple[float, float, float]:
    """``#3366ff``, ``51,102,255`` or a tuple of 0-255 ints / 0-1 floats -> RGB in [0, 1]."""
    if isinstance(text, (tuple, list)):
        values = [float(v) for v in text]
    else:
        raw = text.strip().lstrip("#")
        try:
            if "," in raw:
                values = [float(v) for v in raw.split(",")]
            elif len(raw) == 6:
                values = [int(raw[i:i + 2], 16) for i in (0, 2, 4)]
            else:
                raise ValueError
        except ValueError:
            raise UserError(f"colour {text!r} is not #rrggbb or r,g,b: use e.g. #3060ff or 48,96,255.") from None
    if len(values) != 3 or any(not 0 <= v <= 255 for v in values):
        raise UserError(f"colour {text!r} needs three values from 0 to 255: use e.g. 48,96,255.")
    if all(v <= 1 for v in values) and not isinstance(text, str):
        return tuple(values)
    return tuple(v / 255 for v in values)


def color_loss(images: torch.Tensor, target: tuple[float, float, float]) -> torch.Tensor:
    """Mean absolute distance of images in [0, 1] ``[B, 3, H, W]`` from one colour."""
    colour = torch.tensor(target, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - colour).abs().mean()


def steer(model, scheduler, latents: torch.Tensor, noise_pred: torch.Tensor, t, target, scale: float,
          x0_fn) -> torch.Tensor:
    """Latents moved against the colour loss of their decoded x0 estimate."""
    with torch.enable_grad():
        x = latents.detach().float().requires_grad_(True)
        model_input = scheduler.scale_model_input(x, t)
        x0 = x0_fn(model_input, noise_pred.float())
        loss = color_loss(decode(model.vae, x0), target) * scale
        (grad,) = torch.autograd.grad(loss, x)
    a = scheduler.alphas_cumprod.to(latents.device)[int(round(float(t)))].float()
    sigma2 = (1 - a) / a
    return (x - grad * sigma2).detach().to(latents.dtype)
