"""What CLIP sees: a prompt broken into the tokens the text encoder receives.

The text encoder reads a fixed window of ``model_max_length`` (77) ids: ``<|startoftext|>``, up to
75 prompt tokens, ``<|endoftext|>``, then padding. Tokens past the window are truncated away; the
breakdown keeps them, marked ``dropped``, so a person can see what the model never sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Token:
    position: int  #: index in the 77-token window (for dropped tokens: where it would have been)
    piece: str  #: the BPE piece, e.g. ``photograph</w>``
    id: int
    special: bool = False  #: start/end/padding token
    dropped: bool = False  #: beyond the window: truncated, never reaches the text encoder


@dataclass(frozen=True)
class TokenBreakdown:
    text: str
    tokens: list[Token]  #: start, prompt tokens that fit, end (no padding), then dropped ones
    window: int  #: the model's window, 77 for CLIP
    input_ids: list[int] = field(repr=False)  #: exactly what the text encoder gets (padded)

    @property
    def limit(self) -> int:
        """Prompt tokens that fit between the start and end tokens (75 for CLIP)."""
        return self.window - 2

    @property
    def kept(self) -> list[Token]:
        return [t for t in self.tokens if not t.special and not t.dropped]

    @property
    def dropped(self) -> list[Token]:
        return [t for t in self.tokens if t.dropped]

    @property
    def count(self) -> int:
        """Prompt tokens (no specials), dropped ones included: ``count/limit`` is the running count."""
        return len([t for t in self.tokens if not t.special])

    @property
    def dropped_text(self) -> str:
        return "".join(t.piece for t in self.dropped).replace("</w>", " ").strip()

    def summary(self) -> str:
        line = f"{self.count}/{self.limit} tokens"
        if self.dropped:
            line += f"; {len(self.dropped)} dropped beyond the {self.window}-token window: {self.dropped_text!r}"
        return line


def breakdown(tokenizer, text: str) -> TokenBreakdown:
    """Tokenize ``text`` as the pipeline does (pad to the window, truncate) and explain every id."""
    from core.fields import check_text

    check_text(text)
    window = int(min(tokenizer.model_max_length, 10_000))
    ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pieces = tokenizer.convert_ids_to_tokens(ids)
    fit = window - 2
    tokens = [Token(0, tokenizer.convert_ids_to_tokens(bos), bos, special=True)]
    for i, (tid, piece) in enumerate(zip(ids, pieces)):
        tokens.append(Token(i + 1, piece, tid, dropped=i >= fit))
    tokens.insert(min(len(ids), fit) + 1, Token(min(len(ids), fit) + 1, tokenizer.convert_ids_to_tokens(eos), eos, special=True))
    input_ids = tokenizer(
        text, padding="max_length", max_length=window, truncation=True, verbose=False
    ).input_ids
    return TokenBreakdown(text=text, tokens=tokens, window=window, input_ids=list(input_ids))
