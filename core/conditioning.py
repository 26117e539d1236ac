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

import bisect
from dataclasses import dataclass, replace

import torch

from .batch_rows import Row
from .chunks import check_mode, chunk_prompt
from .errors import UserError
from .prompt_editing import RowSchedule


@dataclass
class Conditioning:
    """What the UNet gets for a batch laid out as [unconditional rows…, text rows…]."""

    hidden: torch.Tensor  #: encoder_hidden_states [R, 77 * chunks, D]
    added: dict | None = None  #: SDXL: {"text_embeds": [R, 1280], "time_ids": [R, 6]} (refiner: [R, 5])


@dataclass(frozen=True)
class ConditioningSchedule:
    """Prompt editing (``core.prompt_editing``): the batch's ``Conditioning`` from each switch step on.
    A plain prompt has one, from step 0."""

    starts: tuple[int, ...]  #: the 0-based step each one starts at, ascending, the first 0
    conds: tuple[Conditioning, ...]

    def at(self, step: int) -> Conditioning:
        return self.conds[bisect.bisect_right(self.starts, step) - 1]


def emphasize(hidden: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """A1111's prompt weights on one chunk's hidden states ``[1, 77, D]``: scale each token's state by its
    weight, then rescale the chunk so its mean is what it was (all weights 1: the states unchanged)."""
    if all(w == 1.0 for w in weights):
        return hidden
    original = hidden.mean()
    w = torch.tensor(weights, device=hidden.device, dtype=hidden.dtype).view(1, -1, 1)
    hidden = hidden * w
    return hidden * (original / hidden.mean())


@torch.no_grad()
def _encode_chunks(tokenizer, encoder, text: str, mode: str, device, penultimate: bool):
    """One encoder over a prompt's chunks (``core.chunks``), weighted, concatenated along the sequence:
    ``[1, 77 * k, D]``, and the pooled output of the first chunk (A1111 and ComfyUI use that one)."""
    states, pooled = [], None
    for chunk in chunk_prompt(tokenizer, text, mode).chunks:
        out = encoder(torch.tensor([chunk.ids], device=device), output_hidden_states=penultimate)
        if pooled is None and out[0].ndim == 2:  # CLIPTextModelWithProjection: the pooled, projected embedding
            pooled = out[0]
        states.append(emphasize(out.hidden_states[-2] if penultimate else out[0], chunk.weights))
    return torch.cat(states, dim=1), pooled


def _encode_sd(model, text: str, mode: str = "chunk") -> torch.Tensor:
    return _encode_chunks(model.tokenizer, model.text_encoder, text, mode, model.device, False)[0]


def _encode_sdxl(model, text: str, mode: str = "chunk") -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [(model.tokenizer, model.text_encoder), (model.tokenizer_2, model.text_encoder_2)]
    if model.text_encoder is None:  # the refiner has only OpenCLIP bigG
        pairs = pairs[1:]
    encoded = [_encode_chunks(tok, enc, text, mode, model.device, True) for tok, enc in pairs]
    length = max(h.shape[1] for h, _ in encoded)
    if any(h.shape[1] != length for h, _ in encoded):
        raise UserError("the two SDXL tokenizers cut this prompt into different numbers of chunks: "
                        "shorten it or use truncation.")
    return torch.cat([h for h, _ in encoded], dim=-1), encoded[-1][1]


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
    """Encodes each distinct text once and lays the rows out for one UNet call per step.

    ``mode``: how prompts longer than one window are read (``core.chunks``: "chunk" or "truncate"). Rows
    whose texts need different numbers of chunks are padded to the longest with the empty prompt's chunk
    (A1111 pads the negative prompt so), so every row has the same sequence length."""

    def __init__(self, model, mode: str = "chunk") -> None:
        self.model = model
        self.mode = check_mode(mode)
        self.sdxl = model.family in ("sdxl", "sdxl-refiner")
        self.refiner = model.family == "sdxl-refiner"
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        if text not in self._cache:
            self._cache[text] = (_encode_sdxl(self.model, text, self.mode) if self.sdxl
                                 else (_encode_sd(self.model, text, self.mode), None))
        return self._cache[text]

    def _zeroed(self, text: str) -> bool:
        """SDXL zeroes the unconditional branch for an empty negative prompt when the model asks for it
        (``force_zeros_for_empty_prompt``: base yes, the refiner no), as diffusers does."""
        return self.sdxl and text == "" and bool(self.model.force_zeros_for_empty_prompt)

    def _padded(self, text: str, length: int, zeroed: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden, pooled = self.encode(text)
        if hidden.shape[1] < length:
            filler = self.encode("")[0]
            hidden = torch.cat([hidden] + [filler] * ((length - hidden.shape[1]) // filler.shape[1]), dim=1)
        if zeroed:
            return torch.zeros_like(hidden), torch.zeros_like(pooled)
        return hidden, pooled

    def batch(self, prompt: str, rows: list[Row], width: int, height: int) -> Conditioning:
        """The text for one UNet call, in ``core.guided_batch``'s layout: the guided rows' negatives, then every row's prompt."""
        guided = [r for r in rows if r.guided]
        texts = [r.negative_prompt for r in guided] + [prompt if r.prompt is None else r.prompt for r in rows]
        length = max(self.encode(t)[0].shape[1] for t in texts)
        zeroed = [self._zeroed(r.negative_prompt) for r in guided] + [False] * len(rows)
        pairs = [self._padded(t, length, z) for t, z in zip(texts, zeroed)]
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

    def schedule(self, prompt: str, rows: list[Row], width: int, height: int,
                 edits: list[RowSchedule]) -> ConditioningSchedule:
        """``batch`` for every run of steps in which no row's prompt or negative prompt changes (``edits``:
        each row's ``core.prompt_editing.RowSchedule``). Each distinct text is encoded once (the cache); each
        step's rows are padded to that step's longest text, as ``batch`` pads them."""
        starts = sorted({0, *(k for e in edits for k in e.switches)})
        conds = []
        for step in starts:
            texts = [e.texts_at(step) for e in edits]
            conds.append(self.batch(prompt, [replace(r, prompt=p, negative_prompt=n) for r, (p, n) in zip(rows, texts)],
                                    width, height))
        return ConditioningSchedule(tuple(starts), tuple(conds))
