"""One batch's classifier-free guidance on the device: which rows take the unconditional pass, and the blend.

The batch is laid out for one UNet call as ``[unconditional copies of the guided rows..., one text copy of
every row...]`` (``core.guidance`` explains why rows at ``s <= 1`` skip the first half);
``noise = uncond + s * (text - uncond)`` on the guided rows.
"""

from __future__ import annotations

import torch

from .guidance import is_guided


class GuidedBatch:
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
