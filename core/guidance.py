"""Classifier-free guidance: the chapter's ``uncond + s * (text - uncond)``, for a batch of rows.

The UNet predicts the noise twice per image, once with the prompt and once with the unconditional
("" or the negative prompt) text; guidance extrapolates from the second towards (and past) the first:

    noise = uncond + s * (text - uncond)        s = the row's guidance scale

A scale ``s <= 1`` needs no unconditional pass at all ("no CFG", as diffusers' ``do_classifier_free_guidance``):
at ``s = 1`` the blend is the text prediction itself. So a batch is laid out for one UNet call as

    [unconditional copies of the guided rows..., one text copy of every row...]

(the chapter's ``torch.cat([uncond, text])``, with unguided rows skipping the first half).

This module is the request side, without torch: what a scale is (``Scale``: checked once by
``check_scale``, then trusted wherever it travels: ``SampleSettings.guidance_scale``, ``Row.scale``),
whether a row is guided, and how a scale is captioned. ``core.guided_batch.GuidedBatch`` holds one
batch's layout on the device; ``core.conditioning.Encoder.batch`` lays the text out the same way.
"""

from __future__ import annotations

import math

from .errors import UserError

#: guidance scales: the chapter uses 1-12, SD users rarely pass 30; far beyond, the latents overflow (black images)
MAX_GUIDANCE = 100.0


class Scale(float):
    """A guidance scale that ``check_scale`` accepted (finite, 0 to ``MAX_GUIDANCE``).

    Made only by ``check_scale``, at the boundary where a person types it; every later check
    (``SampleSettings.validate``, ``core.batch_rows.check_rows``) passes a ``Scale`` through unchanged,
    so a value is checked once however many hands it goes through. It is a ``float`` in every other way.
    """

    __slots__ = ()


def is_guided(scale: float) -> bool:
    """Whether a row at this scale needs the unconditional pass (``s > 1``)."""
    return scale > 1


def check_scale(scale: float | str, what: str = "guidance scale") -> Scale:
    """A guidance scale as a ``Scale`` (finite, 0 to ``MAX_GUIDANCE``), or a one-line ``UserError``;
    a ``Scale`` is returned as it is (it was checked when it was made)."""
    if isinstance(scale, Scale):
        return scale
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise UserError(f"{what} {scale!r} is not a number: use e.g. 7.5.") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_GUIDANCE:
        raise UserError(f"{what} must be a finite number from 0 to {MAX_GUIDANCE:g} (got {scale}): "
                        "use e.g. 7.5, or 1 for no CFG.")
    return Scale(value)


def scale_caption(scale: float) -> str:
    """``12``, ``7.5``, or ``1 · no CFG`` (scales <= 1 skip the unconditional pass)."""
    return f"{scale:g}" if is_guided(scale) else f"{scale:g} · no CFG"
