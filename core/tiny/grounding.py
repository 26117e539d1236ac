"""Words that must pick places: captions whose garment tokens are marked, and a loss on where they look.

The tiny model learns where a word goes from two things during training:

1. Two-garment images (``core.tiny.batches``): ``a bag on the left and a sneaker on the right`` over a
   128x64 image whose left half is a bag and right half a sneaker, so "bag" only helps the left half.
2. A grounding loss in the spirit of TokenCompose (Wang et al., CVPR 2024, arXiv 2312.03626): for each
   garment token, the share of its cross-attention mass (summed over heads, per layer) that falls on
   its own garment's pixels (brightness mask, max-pooled to the layer's grid), pushed towards 1 with
   ``(1 - share)**2``. The masks are free here: every garment is bright on black.

``CaptionTable`` holds token ids ``[R, 77]`` and marks ``[R, 77]`` (0: not grounded, 1: the first
garment / the only one, 2: the second); a caption is tokenised piece by piece (template text, phrase)
so each token knows which phrase it came from, and checked against the tokenizer's own ids.
``GroundingProbe`` is the training-time cross-attention processor that keeps the probabilities.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import captions

#: Phrase tokens that name no garment and so are not grounded.
UNGROUNDED = frozenset({"a</w>", "an</w>", "of</w>"})


@dataclass
class CaptionTable:
    """Captions as model input: ``ids [R, 77]``, ``marks [R, 77]`` (int64), ``rows [keys, K]`` (row
    numbers per key: a class, or ``a * 10 + b`` for a pair), ``empty``: the empty caption's row."""

    ids: torch.Tensor
    marks: torch.Tensor
    rows: torch.Tensor
    empty: int
    texts: list[str]

    def to(self, device) -> "CaptionTable":
        return CaptionTable(self.ids.to(device), self.marks.to(device), self.rows.to(device), self.empty, self.texts)


class _Marker:
    """Tokenises captions piece by piece (memoised) into ids and marks."""

    def __init__(self, tokenizer) -> None:
        self.tok = tokenizer
        self.cache: dict[str, list[int]] = {}
        self.length = tokenizer.model_max_length

    def piece(self, text: str) -> list[int]:
        if text not in self.cache:
            self.cache[text] = self.tok(text, add_special_tokens=False, verbose=False).input_ids if text.strip() else []
        return self.cache[text]

    def encode(self, template: str, phrases: dict[str, str]) -> tuple[list[int], list[int], str]:
        """``template`` with its ``{a}``/``{b}`` fields filled: (ids, marks, text), padded to 77."""
        ids, marks = [self.tok.bos_token_id], [0]
        for literal, field, _, _ in string.Formatter().parse(template):
            ids += self.piece(literal)
            marks += [0] * len(self.piece(literal))
            if field is None:
                continue
            mark = 2 if field == "b" else 1
            pieces = self.piece(phrases[field])
            names = self.tok.convert_ids_to_tokens(pieces)
            ids += pieces
            marks += [0 if n in UNGROUNDED else mark for n in names]
        text = template.format(**phrases)
        ids, marks = ids[:self.length - 1] + [self.tok.eos_token_id], marks[:self.length - 1] + [0]
        pad = self.length - len(ids)
        ids, marks = ids + [self.tok.pad_token_id] * pad, marks + [0] * pad
        return ids, marks, text

    def check(self, ids: list[list[int]], texts: list[str]) -> None:
        """The piecewise ids must be the tokenizer's own for the whole caption."""
        whole = self.tok(texts, padding="max_length", max_length=self.length, truncation=True).input_ids
        for mine, theirs, text in zip(ids, whole, texts):
            if list(mine) != list(theirs):
                raise ValueError(f"piecewise tokens differ from the tokenizer's for {text!r}")


def _table(marker: _Marker, keyed: list[list[tuple[str, dict[str, str]]]]) -> CaptionTable:
    ids, marks, texts, rows = [], [], [], []
    for entries in keyed:
        start = len(ids)
        for template, phrases in entries:
            i, m, t = marker.encode(template, phrases)
            ids.append(i)
            marks.append(m)
            texts.append(t)
        rows.append(list(range(start, len(ids))))
    empty_ids, _, _ = marker.encode("", {})
    ids.append(empty_ids)
    marks.append([0] * len(empty_ids))
    texts.append("")
    marker.check(ids, texts)
    width = max(len(r) for r in rows)
    table = torch.tensor([[r[k % len(r)] for k in range(width)] for r in rows])
    return CaptionTable(torch.tensor(ids), torch.tensor(marks), table, len(ids) - 1, texts)


def single_table(tokenizer) -> CaptionTable:
    """Every single-garment caption (templates x phrases), keyed by class."""
    marker = _Marker(tokenizer)
    return _table(marker, [[(t.replace("{}", "{a}"), {"a": p}) for t in captions.TEMPLATES for p in phrases]
                           for phrases in captions.PHRASES])


def pair_table(tokenizer, per_pair: int, seed: int = 0) -> CaptionTable:
    """``per_pair`` random two-garment captions for every ordered class pair (key ``a * 10 + b``),
    never one of ``captions.PAIR_PROMPTS`` (they stay held out for the card)."""
    rng = random.Random(seed)
    held = {p for p, _, _ in captions.PAIR_PROMPTS}
    marker = _Marker(tokenizer)
    keyed = []
    n = len(captions.PHRASES)
    for a in range(n):
        for b in range(n):
            entries: list[tuple[str, dict[str, str]]] = []
            while len(entries) < per_pair:
                template = rng.choice(captions.PAIR_TEMPLATES)
                phrases = {"a": rng.choice(captions.PHRASES[a]), "b": rng.choice(captions.PHRASES[b])}
                if template.format(**phrases) not in held:
                    entries.append((template, phrases))
            keyed.append(entries)
    return _table(marker, keyed)


class GroundingProbe:
    """Training-time cross-attention processor: classic attention maths, and while ``store`` is a
    list, each call's probabilities averaged over heads (``[batch, pixels, 77]``, with grad) go into it."""

    def __init__(self) -> None:
        self.store: list[torch.Tensor] | None = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kw):
        batch = hidden_states.shape[0]
        query = attn.to_q(hidden_states)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        key, value = attn.to_k(context), attn.to_v(context)
        query, key, value = (attn.head_to_batch_dim(x) for x in (query, key, value))
        probs = attn.get_attention_scores(query, key, None)
        if self.store is not None:
            self.store.append(probs.view(batch, attn.heads, *probs.shape[1:]).float().mean(1))
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


def install(unet) -> GroundingProbe:
    """Put one ``GroundingProbe`` on every cross-attention layer (``attn2``) of ``unet``; returns it."""
    probe = GroundingProbe()
    procs = dict(unet.attn_processors)
    unet.set_attn_processor({k: (probe if k.endswith("attn2.processor") else v) for k, v in procs.items()})
    return probe


def object_masks(model_images: torch.Tensor, threshold: float = -0.8) -> torch.Tensor:
    """``[N, 3, H, W]`` in [-1, 1] -> ``[N, 1, H, W]`` float: 1 where the garment is (brighter than
    ``threshold``; the background is black, -1)."""
    return (model_images.mean(1, keepdim=True) > threshold).float()


def grounding_loss(probs: list[torch.Tensor], marks: torch.Tensor, masks: torch.Tensor,
                   pool: str = "max") -> torch.Tensor:
    """Mean ``(1 - share)**2`` over grounded tokens and layers.

    ``probs``: per layer ``[B, h*w, 77]``; ``marks [B, 77]`` (0/1/2); ``masks [B, 2, H, W]``: garment
    1's and garment 2's pixels, pooled to each layer's grid (whose aspect is the image's). ``pool``
    ``max``: a cell is the garment's if any of its pixels is, so heat on the garment's border cells
    costs nothing; ``avg``: a cell counts by the share of its pixels that are garment, so the loss
    pulls the heat into the garment's interior (what a map read as *where* should show)."""
    if pool not in ("max", "avg"):
        raise ValueError(f"pool must be 'max' or 'avg', not {pool!r}")
    grounded = (marks > 0).float()
    if not probs or grounded.sum() == 0:
        return masks.new_zeros(())
    b, _, H, W = masks.shape
    total = masks.new_zeros(())
    for p in probs:
        scale = int(round((H * W / p.shape[1]) ** 0.5))
        fn = F.adaptive_max_pool2d if pool == "max" else F.adaptive_avg_pool2d
        m = fn(masks, (H // scale, W // scale)).flatten(2)  # [B, 2, S]
        inside = torch.einsum("bst,bks->bkt", p, m)  # [B, 2, 77]
        mass = p.sum(1).clamp_min(1e-8)  # [B, 77]
        own = torch.where(marks == 2, inside[:, 1], inside[:, 0])
        share = own / mass
        total = total + ((1 - share).pow(2) * grounded).sum() / grounded.sum()
    return total / len(probs)
