"""Classifier-free guidance: the chapter's ``uncond + s * (text - uncond)``, for a batch of rows.

The UNet predicts the noise twice per image, once with the prompt and once with the unconditional
("" or the negative prompt) text; guidance extrapolates from the second towards (and past) the first:

    noise = uncond + s * (text - uncond)        s = the row's guidance scale

A scale ``s <= 1`` needs no unconditional pass at all ("no CFG", as diffusers' ``do_classifier_free_guidance``):
at ``s = 1`` the blend is the text prediction itself. So a batch is laid out for one UNet call as

    [unconditional copies of the guided rows..., one text copy of every row...]

(the chapter's ``torch.cat([uncond, text])``, with unguided rows skipping the first half). ``Guidance``
holds that layout for one batch; ``core.conditioning.Encoder.batch`` lays the text out the same way.
"""

from __future__ import annotations

import math

import torch

from .errors import UserError
from .fields import MAX_GUIDANCE


def is_guided(scale: float) -> bool:
    """Whether a row at this scale needs the unconditional pass (``s > 1``)."""
    return scale > 1


def check_scale(scale: float, what: str = "guidance scale") -> float:
    """A guidance scale as a float (finite, 0 to ``MAX_GUIDANCE``), or a one-line ``UserError``."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise UserError(f"{what} {scale!r} is not a number: use e.g. 7.5.") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_GUIDANCE:
        raise UserError(f"{what} must be a finite number from 0 to {MAX_GUIDANCE:g} (got {scale}): "
                        "use e.g. 7.5, or 1 for no CFG.")
    return value


def scale_caption(scale: float) -> str:
    """``12``, ``7.5``, or ``1 · no CFG`` (scales <= 1 skip the unconditional pass)."""
    return f"{scale:g}" if is_guided(scale) else f"{scale:g} · no CFG"


class Guidance:
    """The guidance of one batch: which rows are guided, at what scale; ``expand`` lays the latents out
    for the UNet, ``blend`` turns its predictions back into one per row."""

    def __init__(self, scales: list[float], device: torch.device, dtype: torch.dtype) -> None:
        self.rows = len(scales)
        self.guided = [i for i, s in enumerate(scales) if is_guided(s)]  #: rows with an unconditional pass
        self.every_row = len(self.guided) == self.rows  # the common case: no index gathering needed
        self.index = torch.tensor(self.guided, device=device, dtype=torch.long)
        self.scale = torch.tensor([scales[i] for i in self.guided], device=device, dtype=dtype).view(-1, 1, 1, 1)

    def expand(self, latents: torch.Tensor) -> torch.Tensor:
        """One copy per guided row for the unconditional pass, then one per row for the text."""
        if not self.guided:
            return latents
        uncond = latents if self.every_row else latents.index_select(0, self.index)
        return torch.cat([uncond, latents])

    def text_half(self, batch: torch.Tensor) -> torch.Tensor:
        """The text rows of an expanded batch (the last ``rows``)."""
        return batch[-self.rows:]

    def blend(self, noise_pred: torch.Tensor) -> torch.Tensor:
        """``uncond + s * (text - uncond)`` on the guided rows; the unguided rows keep their text prediction."""
        if not self.guided:
            return noise_pred
        uncond, text = noise_pred[: len(self.guided)], noise_pred[len(self.guided):]
        if self.every_row:
            return uncond + self.scale * (text - uncond)
        guided_text = text.index_select(0, self.index)
        return text.index_copy(0, self.index, uncond + self.scale * (guided_text - uncond))
