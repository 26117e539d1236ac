"""Text conditioning for the sampler: step 1 of the chapter's loop, for SD 1.x/2.x and SDXL.

SD 1.x/2.x: the CLIP text encoder's last hidden states, ``[1, 77, D]``.
SDXL: two text encoders' penultimate hidden states concatenated (768 + 1280 = 2048 per token), plus the
second encoder's pooled output (1280) and six "time ids" (original size, crop top-left, target size)
that the UNet adds to its timestep embedding (micro-conditioning).
SDXL refiner: the second encoder alone (1280 per token), its pooled output, and five time ids: original
size, crop top-left and an *aesthetic score* (6 for the text rows, 2.5 for the unconditional ones: the
refiner was trained with LAION aesthetic scores, and low scores on the negative branch push away from them).

Every row of a batch has its own guidance scale, negative prompt and (SDXL) size conditioning, so a
sweep can vary any of them while keeping one UNet call per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.cfg import is_guided

@dataclass(frozen=True)
class Row:
    """One image of a batch: its guidance scale, its negative prompt, its SDXL micro-conditioning."""

    scale: float
    negative_prompt: str = ""
    original_size: tuple[int, int] | None = None  #: SDXL (h, w); None: the output size
    crop_top_left: tuple[int, int] = (0, 0)  #: SDXL (y, x)
    target_size: tuple[int, int] | None = None  #: SDXL (h, w); None: the output size
    aesthetic_score: float = 6.0  #: SDXL refiner: the text rows' score (diffusers' default)
    negative_aesthetic_score: float = 2.5  #: SDXL refiner: the unconditional rows' score

    @property
    def guided(self) -> bool:
        """Whether this row needs the unconditional pass (``core.cfg``: scale > 1)."""
        return is_guided(self.scale)


@dataclass
class Conditioning:
    """What the UNet gets for a batch laid out as [unconditional rows…, text rows…]."""

    hidden: torch.Tensor  #: encoder_hidden_states [R, 77, D]
    added: dict | None = None  #: SDXL: {"text_embeds": [R, 1280], "time_ids": [R, 6]} (refiner: [R, 5])


@torch.no_grad()
def _encode_sd(model, text: str) -> torch.Tensor:
    ids = model.tokenizer(text, padding="max_length", max_length=model.tokenizer.model_max_length,
                          truncation=True, return_tensors="pt").input_ids
    return model.text_encoder(ids.to(model.device))[0]


@torch.no_grad()
def _encode_sdxl(model, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    states, pooled = [], None
    pairs = [(model.tokenizer, model.text_encoder), (model.tokenizer_2, model.text_encoder_2)]
    if model.text_encoder is None:  # the refiner has only OpenCLIP bigG
        pairs = pairs[1:]
    for tokenizer, encoder in pairs:
        ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        out = encoder(ids.to(model.device), output_hidden_states=True)
        if out[0].ndim == 2:  # CLIPTextModelWithProjection: the pooled, projected embedding
            pooled = out[0]
        states.append(out.hidden_states[-2])  # SDXL reads the penultimate layer
    return torch.cat(states, dim=-1), pooled


def _time_ids(row: Row, width: int, height: int) -> list[int]:
    original = row.original_size or (height, width)
    target = row.target_size or (height, width)
    return [*original, *row.crop_top_left, *target]


def _refiner_time_ids(row: Row, width: int, height: int, negative: bool) -> list[float]:
    """The refiner's 5 ids: original size, crop top-left, aesthetic score. As diffusers'
    ``StableDiffusionXLImg2ImgPipeline``, the unconditional rows use crop (0, 0) and the negative score."""
    original = row.original_size or (height, width)
    if negative:
        return [*original, 0, 0, row.negative_aesthetic_score]
    return [*original, *row.crop_top_left, row.aesthetic_score]


class Encoder:
    """Encodes each distinct text once and lays the rows out for one UNet call per step."""

    def __init__(self, model) -> None:
        self.model = model
        self.sdxl = model.family in ("sdxl", "sdxl-refiner")
        self.refiner = model.family == "sdxl-refiner"
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        if text not in self._cache:
            self._cache[text] = _encode_sdxl(self.model, text) if self.sdxl else (_encode_sd(self.model, text), None)
        return self._cache[text]

    def negative(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """SDXL zeroes the unconditional branch for an empty negative prompt when the model asks for it
        (``force_zeros_for_empty_prompt``: base yes, the refiner no), as diffusers does."""
        if self.sdxl and text == "" and self.model.force_zeros_for_empty_prompt:
            hidden, pooled = self.encode("")
            return torch.zeros_like(hidden), torch.zeros_like(pooled)
        return self.encode(text)

    def batch(self, prompt: str, rows: list[Row], width: int, height: int) -> Conditioning:
        """The text for one UNet call, in ``core.cfg``'s layout: the guided rows' negatives, then every row's prompt."""
        guided = [r for r in rows if r.guided]
        pairs = [self.negative(r.negative_prompt) for r in guided] + [self.encode(prompt) for _ in rows]
        hidden = torch.cat([h for h, _ in pairs])
        if not self.sdxl:
            return Conditioning(hidden)
        pooled = torch.cat([p for _, p in pairs])
        if self.refiner:
            ids = [_refiner_time_ids(r, width, height, True) for r in guided]
            ids += [_refiner_time_ids(r, width, height, False) for r in rows]
        else:
            ids = [_time_ids(r, width, height) for r in guided + rows]
        time_ids = torch.tensor(ids, device=self.model.device, dtype=hidden.dtype)
        return Conditioning(hidden, {"text_embeds": pooled, "time_ids": time_ids})
