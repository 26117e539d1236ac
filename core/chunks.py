"""Prompts longer than CLIP's window: A1111/ComfyUI's 75-token chunks, or diffusers' truncation.

CLIP reads 77 ids: ``<|startoftext|>``, 75 prompt tokens, ``<|endoftext|>`` (then padding). With
``mode="chunk"`` (the default) a longer prompt is cut into chunks of 75 tokens, each wrapped in its own
start/end tokens and padded to 77; every chunk is encoded on its own and the hidden states are
concatenated along the sequence, so the UNet cross-attends to ``77 * k`` positions. ``BREAK`` ends the
current chunk early (the rest of it is padding). ``mode="truncate"`` keeps the first window only and
drops the rest, as diffusers' pipelines do. At most ``MAX_CHUNKS`` chunks are read; tokens past them are
dropped and reported like truncated ones. A prompt of up to 75 tokens is one chunk either way, and its
ids are exactly the pipeline's.

Each token carries its weight from ``core.prompt_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UserError
from .prompt_weights import ParsedPrompt, parse

MODES = ("chunk", "truncate")
MAX_CHUNKS = 8  #: 600 prompt tokens; past that tokens are dropped (and reported), so a pasted essay stays cheap


def check_mode(mode: str) -> str:
    """A long-prompt mode, or a one-line ``UserError``."""
    if mode not in MODES:
        raise UserError(f"long-prompt mode {mode!r} is not one of {', '.join(MODES)}: pick one.")
    return mode


@dataclass(frozen=True)
class Piece:
    """One prompt token: its id, weight, chunk and place in the chunk (1..75)."""

    id: int
    weight: float
    chunk: int
    offset: int


@dataclass(frozen=True)
class Chunk:
    ids: list[int]  #: the window the encoder gets: start, tokens, end, padding (77)
    weights: list[float]  #: per position; 1 for start, end and padding
    count: int  #: prompt tokens in it


@dataclass(frozen=True)
class ChunkedPrompt:
    text: str
    parsed: ParsedPrompt
    chunks: list[Chunk]  #: what reaches the encoder (one in "truncate" mode)
    pieces: list[Piece]  #: the prompt tokens, in order, dropped ones included (chunk >= len(chunks))
    window: int  #: 77 for CLIP
    mode: str = "chunk"
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Prompt tokens per chunk (75)."""
        return self.window - 2

    @property
    def dropped(self) -> list[Piece]:
        return [p for p in self.pieces if p.chunk >= len(self.chunks)]

    @property
    def input_ids(self) -> list[int]:
        return [i for c in self.chunks for i in c.ids]

    @property
    def weighted(self) -> bool:
        return any(w != 1.0 for c in self.chunks for w in c.weights)


def _window(tokenizer) -> int:
    return int(min(tokenizer.model_max_length, 10_000))


def chunk_prompt(tokenizer, text: str, mode: str = "chunk") -> ChunkedPrompt:
    """Tokenize ``text`` fragment by fragment (weights, ``BREAK``) and lay the tokens out in chunks."""
    check_mode(mode)
    parsed = parse(text)
    window = _window(tokenizer)
    size = window - 2
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    pieces: list[Piece] = []
    chunk, offset = 0, 0
    for frag in parsed.fragments:
        if frag.is_break:
            chunk, offset = chunk + 1, 0
            continue
        ids = tokenizer(frag.text, add_special_tokens=False, truncation=False, verbose=False).input_ids
        for tid in ids:
            if offset == size:
                chunk, offset = chunk + 1, 0
            offset += 1
            pieces.append(Piece(tid, frag.weight, chunk, offset))
    ends_empty = chunk > 0 and not any(p.chunk == chunk for p in pieces)  # a trailing BREAK opens nothing
    count = min(chunk if ends_empty else chunk + 1, MAX_CHUNKS) if mode == "chunk" else 1
    chunks = []
    for k in range(count):
        mine = [p for p in pieces if p.chunk == k]
        ids = [bos, *(p.id for p in mine), eos] + [pad] * (size - len(mine))
        weights = [1.0, *(p.weight for p in mine), 1.0] + [1.0] * (size - len(mine))
        chunks.append(Chunk(ids, weights, len(mine)))
    notes = list(parsed.notes)
    if mode == "truncate" and parsed.breaks:
        notes.append("BREAK ends the only window when truncating: what follows it is dropped")
    return ChunkedPrompt(text, parsed, chunks, pieces, window, mode, notes)
