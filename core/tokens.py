"""What CLIP sees: a prompt broken into the tokens the text encoder receives.

The text encoder reads a fixed window of ``model_max_length`` (77) ids: ``<|startoftext|>``, up to
75 prompt tokens, ``<|endoftext|>``, then padding. A longer prompt is cut into 75-token chunks, each a
window of its own (``core.chunks``, the default), or truncated (``mode="truncate"``, as diffusers): the
breakdown keeps truncated tokens, marked ``dropped``, so a person can see what the model never sees.
Every token carries its A1111 weight (``core.prompt_weights``: ``(word)`` x1.1, ``[word]`` /1.1, ...)
and its readable text: BPE pieces are bytes spelled in printable characters (``👟`` is ``ðŁĳŁ</w>``), so
each piece is decoded back; the pieces of one multi-byte character each say which part they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .chunks import chunk_prompt
from .clip_vocab import byte_decoder
from .errors import UserError
from .inputs import check_text
from .prompt_editing import Segment, parse_edits

DEFAULT_STEPS = 30  #: the step count prompt edits are laid out over when none is given (``SampleSettings``' default)


@dataclass(frozen=True)
class Token:
    position: int  #: index in the encoder's sequence (chunk k starts at 77k; dropped: where it would have been)
    piece: str  #: the BPE piece, e.g. ``photograph</w>``
    id: int
    special: bool = False  #: start/end/padding token
    dropped: bool = False  #: beyond the window: truncated, never reaches the text encoder
    weight: float = 1.0  #: the A1111 weight the token's hidden state is scaled by
    chunk: int = 0  #: which 75-token chunk it is in
    running: int = 0  #: prompt tokens so far, itself included (0 for specials): ``running/75`` per chunk
    text: str = ""  #: the piece as text (``photograph``, ``👟``, ``part 1/2 of 🦩``); "" for specials


@dataclass(frozen=True)
class TokenBreakdown:
    text: str
    tokens: list[Token]  #: per chunk: start, its prompt tokens, end (no padding); then dropped ones
    window: int  #: the model's window, 77 for CLIP
    input_ids: list[int] = field(repr=False)  #: exactly what the text encoder gets (padded, every chunk)
    chunks: int = 1  #: windows the encoder reads
    notes: list[str] = field(default_factory=list)  #: how unbalanced brackets were read
    mode: str = "chunk"
    #: prompt editing (``core.prompt_editing``): each segment's tokens, the first one's also above; () if plain
    segments: tuple[SegmentTokens, ...] = ()
    steps: int = 0  #: the step count the segments are laid out over (0: no edits)

    @property
    def limit(self) -> int:
        """Prompt tokens that fit: 75 per chunk (75, 150, ...)."""
        return (self.window - 2) * self.chunks

    @property
    def kept(self) -> list[Token]:
        return [t for t in self.tokens if not t.special and not t.dropped]

    @property
    def dropped(self) -> list[Token]:
        return [t for t in self.tokens if t.dropped]

    @property
    def weighted(self) -> list[Token]:
        return [t for t in self.tokens if t.weight != 1.0 and not t.special]

    @property
    def count(self) -> int:
        """Prompt tokens (no specials), dropped ones included: ``count/limit`` is the running count."""
        return len([t for t in self.tokens if not t.special])

    @property
    def dropped_text(self) -> str:
        return pieces_text([t.piece for t in self.dropped])

    @property
    def beyond(self) -> str:
        """What the dropped tokens are beyond: ``the 77-token window``, or ``8 chunks of 75``."""
        return f"the {self.window}-token window" if self.mode == "truncate" else \
            f"{self.chunks} chunks of {self.window - 2}"

    def summary(self) -> str:
        line = f"{self.count}/{self.limit} tokens"
        if self.chunks > 1:
            line += f" in {self.chunks} chunks of {self.window - 2}"
        if self.dropped:
            line += f"; {len(self.dropped)} dropped beyond {self.beyond}: {self.dropped_text!r}"
        if self.weighted:
            line += f"; {len(self.weighted)} weighted"
        for note in self.notes:
            line += f"; {note}"
        if self.segments:
            line = f"prompt edits over {self.steps} steps: " + "; ".join(
                f"{seg.segment.label} {seg.tokens.summary()}" for seg in self.segments)
        return line


@dataclass(frozen=True)
class SegmentTokens:
    """What the text encoder reads during one segment of an edited prompt: its steps, text and tokens."""

    segment: Segment
    tokens: TokenBreakdown

    @property
    def label(self) -> str:
        return self.segment.label


def _piece_bytes(piece: str) -> bytes | None:
    """The bytes a BPE piece spells (``</w>`` left out; each character stands for one byte in
    ``core.clip_vocab``'s byte map), or None for a piece outside that map (another tokenizer's)."""
    decode = byte_decoder()
    body = piece[:-4] if piece.endswith("</w>") else piece
    return bytes(decode[c] for c in body) if all(c in decode for c in body) else None


def pieces_text(pieces: list[str]) -> str:
    """The text a run of BPE pieces spells (``</w>`` ends a word), bytes decoded: ``👟 shoe``."""
    out = b""
    for piece in pieces:
        raw = _piece_bytes(piece)
        out += piece.replace("</w>", "").encode() if raw is None else raw
        out += b" " if piece.endswith("</w>") else b""
    return out.decode("utf-8", errors="replace").strip()


def piece_texts(pieces: list[str]) -> list[str]:
    """The readable text of each BPE piece (``</w>``, the end of a word, left out).

    Consecutive pieces are joined until their bytes are whole UTF-8 characters: a piece that is whole
    on its own shows its text; pieces that share a character each show ``part k/n of 🦩``. A piece
    outside the byte map (another tokenizer's) is shown as it is.
    """
    raw = [_piece_bytes(piece) for piece in pieces]
    texts = [""] * len(pieces)
    i = 0
    while i < len(pieces):
        if raw[i] is None:
            texts[i] = pieces[i].replace("</w>", "")
            i += 1
            continue
        j, buf = i, b""
        while j < len(pieces) and raw[j] is not None:
            buf += raw[j]
            j += 1
            try:
                text = buf.decode("utf-8")
                break
            except UnicodeDecodeError:
                continue
        else:  # the prompt ends inside a character (cannot happen for typed text)
            text = buf.decode("utf-8", errors="replace")
        n = j - i
        for k in range(i, j):
            texts[k] = text if n == 1 else f"part {k - i + 1}/{n} of {text}"
        i = j
    return texts


def breakdown(tokenizer, text: str, mode: str = "chunk", steps: int | None = None) -> TokenBreakdown:
    """Tokenize ``text`` as the encoder will get it (weights, chunks or truncation) and explain every id.

    A prompt with edits (``[from:to:when]``) is laid out over ``steps`` (default ``DEFAULT_STEPS``): the
    result is its first segment's tokens, with every segment's in ``segments``. A malformed edit is read
    as plain text, with the reason in ``notes`` (the token pane shows it as one line)."""
    check_text(text)
    if "[" in text and ":" in text:
        try:
            edited = parse_edits(text)
        except UserError as exc:
            plain = _breakdown(tokenizer, text, mode)
            return replace(plain, notes=[*plain.notes, str(exc)])
        if edited.edits:
            steps = steps or DEFAULT_STEPS
            parts = tuple(SegmentTokens(seg, _breakdown(tokenizer, seg.text, mode))
                          for seg in edited.schedule(steps).segments)
            return replace(parts[0].tokens, text=text, segments=parts, steps=steps)
    return _breakdown(tokenizer, text, mode)


def _breakdown(tokenizer, text: str, mode: str) -> TokenBreakdown:
    prompt = chunk_prompt(tokenizer, text, mode)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    name = tokenizer.convert_ids_to_tokens
    pieces = name([p.id for p in prompt.pieces])
    texts = piece_texts(pieces)
    tokens: list[Token] = []
    size, window = prompt.size, prompt.window
    running = 0
    for k, chunk in enumerate(prompt.chunks):
        tokens.append(Token(k * window, name(bos), bos, special=True, chunk=k))
        for p, piece, text in zip(prompt.pieces, pieces, texts):
            if p.chunk == k:
                running += 1
                tokens.append(Token(k * window + p.offset, piece, p.id, weight=p.weight, chunk=k, running=running,
                                    text=text))
        tokens.append(Token(k * window + chunk.count + 1, name(eos), eos, special=True, chunk=k))
    last = (len(prompt.chunks) - 1) * window + size + 1  # where the first dropped token would have stood
    kept = len(prompt.pieces) - len(prompt.dropped)
    for i, (p, piece, text) in enumerate(zip(prompt.pieces[kept:], pieces[kept:], texts[kept:])):  # truncated
        tokens.append(Token(last + i, piece, p.id, dropped=True, weight=p.weight, chunk=p.chunk,
                            running=running + 1 + i, text=text))
    return TokenBreakdown(text=text, tokens=tokens, window=window, input_ids=prompt.input_ids,
                          chunks=len(prompt.chunks), notes=prompt.notes, mode=mode)
