"""Loss guidance (the chapter's exercise 9): steer sampling with the gradient of a loss on the image.

At each step the model's x0 estimate (noise prediction held fixed, so no backward pass through the UNet) is
turned into pixels and compared with a target colour, ``loss = |image - colour|.mean()`` per image; the
gradient of that loss is taken w.r.t. the step's latents x through the x0 estimate, and x moves against it
before the scheduler steps. No training: any model, any loss.

Units. Taken raw, the step ``x -= scale * grad`` destroys the image: ``dx0/dx = 1/sqrt(alpha_bar)`` is in the
hundreds at the start of the schedule (and ``(1 - alpha_bar)/alpha_bar`` more with a sigma factor), the
mean over pixels divides the gradient by the image size and the batch, so one scale is a blur for one model
and white noise for another. Here each image's x0 estimate takes the gradient step that, to first order,
lowers its loss by the fraction ``scale / (PULL_UNITS * steps)`` of itself (``scale`` 100: to about 1/e over
the run if the model did not resist), whatever the model, image size, batch, scheduler or step count. The
latents move by that x0 step times ``dx/dx0`` (``sqrt(alpha_bar)`` for DDPM/DDIM x_t, 1 for Euler's sigma
space), read off the x0 function itself.
"""

from __future__ import annotations

from typing import Callable

import torch

from .errors import UserError

#: ``scale`` is the run's total pull on the x0 estimate in 1/PULL_UNITS of the data range (pixels in [-1, 1]).
PULL_UNITS = 100.0


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


def format_color(target: tuple[float, float, float]) -> str:
    """RGB in [0, 1] -> ``#rrggbb`` (what the user typed, for captions and saved parameters)."""
    return "#" + "".join(f"{round(255 * c):02x}" for c in target)


def color_loss(images: torch.Tensor, target: tuple[float, float, float] | float) -> torch.Tensor:
    """Mean absolute distance of each image in [0, 1] ``[B, C, H, W]`` from one colour (or grey): ``[B]``."""
    values = target if isinstance(target, (tuple, list)) else (target,)
    colour = torch.tensor(values, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - colour).abs().flatten(1).mean(1)


def pull(x: torch.Tensor, x0_of: Callable[[torch.Tensor], torch.Tensor],
         loss_of: Callable[[torch.Tensor], torch.Tensor], scale: float, steps: int) -> torch.Tensor:
    """``x`` moved against the gradient of ``loss_of(x0_of(x))`` (per-image losses ``[B]``), in float32.

    ``x0_of`` must be affine in x (the noise prediction held fixed), as every scheduler's x0 estimate is.
    Each image's x0 estimate takes the gradient step that, to first order, lowers its loss by the
    fraction ``scale / (PULL_UNITS * steps)``.
    """
    with torch.enable_grad():
        xg = x.detach().float().requires_grad_(True)
        x0 = x0_of(xg)
        loss = loss_of(x0)
        (grad,) = torch.autograd.grad(loss.sum(), xg)
        gain = (x0_of(xg.detach() + 1.0) - x0.detach()).mean()  # dx0/dx: 1/sqrt(alpha_bar), or 1 in sigma space
    grad_x0 = grad / gain  # dL/dx0 (chain rule through the affine x0 estimate)
    norm2 = grad_x0.flatten(1).pow(2).sum(1).view(-1, *[1] * (grad.ndim - 1))
    fraction = scale / (PULL_UNITS * max(int(steps), 1))
    loss = loss.detach().view_as(norm2)
    delta_x0 = torch.where(norm2 > 0, -fraction * loss * grad_x0 / norm2.clamp_min(1e-30), torch.zeros_like(grad))
    return (x.detach().float() + delta_x0 / gain).to(x.dtype)


def steer(model, scheduler, latents: torch.Tensor, noise_pred: torch.Tensor, t, target, scale: float,
          x0_fn, steps: int) -> torch.Tensor:
    """Latents moved against the colour loss of their decoded x0 estimate (one step of ``steps``)."""
    from .vae import unscale_latents

    def pixels(x0: torch.Tensor) -> torch.Tensor:  # unclamped: a clamp would zero the gradient where it bites
        vae = model.vae
        return vae.decode(unscale_latents(vae, x0).to(vae.dtype)).sample.float() / 2 + 0.5

    def x0_of(x: torch.Tensor) -> torch.Tensor:
        return x0_fn(scheduler.scale_model_input(x, t), noise_pred.float())

    return pull(latents, x0_of, lambda x0: color_loss(pixels(x0), target), scale, steps)
