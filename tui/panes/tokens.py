"""Pane 1 — prompt and negative prompt, and what the model's tokenizers make of them, per keystroke.

The tokenizers are resolved off the UI thread at start (no weights: ``core.model_folder.resolve_tokenizers``)
so typing works while the model loads on the worker. Tokenizing is a few hundred microseconds, so
the tables are updated synchronously on every change: they never wait for the GPU worker. SDXL
models have two tokenizers (CLIP ViT-L and OpenCLIP bigG); their tables sit side by side.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Label

from ..app_context import app_context
from ..config import MAX_PROMPT_CHARS
from ...core.tokens import TokenBreakdown, breakdown
from ..messages import PaneReady
from ...core.clip_vocab import clip_tokenizer
from ...core.model_folder import resolve_tokenizers

SYNC_CHARS = 2000  #: longer text is tokenized on a thread (20,000 characters take about 0.4 s)

Row = tuple[str, str, str, int | str, str, str, str]  #: pos, piece, text, id, weight, n, note ("" pos: a segment)


class TokenTable(DataTable):
    """The token table: home/end jump to the first/last token (DataTable's own scroll sideways)."""

    BINDINGS = [
        Binding("home", "scroll_top", "First token", show=False),
        Binding("end", "scroll_bottom", "Last token", show=False),
    ]


class TokenColumn(Vertical):
    """One tokenizer's count line and token table."""

    DEFAULT_CSS = """
    TokenColumn { width: 1fr; height: 1fr; }
    TokenColumn > Label { height: auto; max-height: 4; padding: 0 1; width: 100%; text-overflow: ellipsis; }
    TokenColumn > Label.-over { color: $error; text-style: bold; }
    TokenColumn > DataTable { height: 1fr; }
    """

    def __init__(self, suffix: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.suffix = suffix
        self._shown: list[Row] = []  #: rows in the table now

    def compose(self) -> ComposeResult:
        yield Label("loading tokenizer…", id=f"count{self.suffix}")
        table = TokenTable(id=f"token-table{self.suffix}", cursor_type="row", zebra_stripes=True)
        table.add_columns("pos", "piece", "text", "id", "weight", "n", "note")
        yield table

    def show(self, title: str, result: TokenBreakdown) -> None:
        """Update the count line and the rows after the first difference (a keystroke changes one or two).

        A prompt with edits (``core.prompt_editing``) lists each segment's tokens under a row naming its steps."""
        if result.segments:
            line = f"{title}: edits over {result.steps} steps — " + " · ".join(
                f"{seg.label}: {seg.tokens.count}/{seg.tokens.limit}" + (f" ({len(seg.tokens.dropped)} dropped)"
                                                                       if seg.tokens.dropped else "")
                for seg in result.segments)
            for note in dict.fromkeys(n for seg in result.segments for n in seg.tokens.notes):
                line += f" — {note}"
            rows = [row for seg in result.segments
                    for row in [("", seg.label, _short(seg.segment.text, 30), "", "", "", f"of {result.steps}"),
                                *_rows(seg.tokens)]]
            over = any(seg.tokens.dropped for seg in result.segments)
        else:
            line = f"{title}: {result.count}/{result.limit} tokens"
            if result.chunks > 1:
                line += f" in {result.chunks} chunks"
            if result.dropped:
                line += f" — {len(result.dropped)} dropped beyond {result.beyond}: {_short(result.dropped_text)!r}"
            for note in result.notes:  # how unbalanced brackets were read
                line += f" — {note}"
            rows, over = _rows(result), bool(result.dropped)
        count = self.query_one(Label)
        count.update(line)
        count.tooltip = line  # the whole line, when the column is too narrow for it
        count.set_class(over, "-over")
        self._update(rows)

    def _update(self, rows: list[Row]) -> None:
        table = self.query_one(DataTable)
        same = 0
        for old, new in zip(self._shown, rows):
            if old != new:
                break
            same += 1
        for i in range(len(self._shown) - 1, same - 1, -1):
            table.remove_row(f"r{i}")
        for i, (pos, piece, text, tid, weight, running, note) in enumerate(rows[same:], start=same):
            style = "dim italic" if tok_special(note) else ("strike red" if note.startswith("dropped") else "")
            if not pos:  # a prompt edit's segment: the steps it holds for
                style = "bold cyan"
            weight_style = style or ("bold green" if weight and float(weight) > 1 else "bold yellow" if weight else "")
            table.add_row(Text(pos, style=style), Text(piece, style=style), Text(text, style=style),
                          Text(str(tid), style=style), Text(weight, style=weight_style),
                          Text(running, style=style), Text(note, style=style), key=f"r{i}")
        self._shown = rows


def _rows(result: TokenBreakdown) -> list[Row]:
    """One table row per token of ``result``."""
    rows: list[Row] = []
    size = result.window - 2
    dropped = 0
    for tok in result.tokens:
        pos = str(tok.position)
        running = "" if tok.special else f"{tok.running}/{size * (tok.chunk + 1)}"
        if tok.special:
            note = f"chunk {tok.chunk + 1} {'start' if tok.id == result.tokens[0].id else 'end'}"  # fits 80 columns
            if result.chunks == 1:
                note = "special"
        elif tok.dropped:  # numbered on their own: they have no place in the encoder's sequence
            dropped += 1
            pos, note = "–", f"dropped {dropped}/{len(result.dropped)}"
            running = f"{tok.running}/{result.limit}"
        else:
            note = ""
        weight = "" if tok.special or tok.weight == 1.0 else f"{tok.weight:.3g}"
        rows.append((pos, tok.piece, tok.text, tok.id, weight, running, note))
    return rows


def _short(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tok_special(note: str) -> bool:
    """A row note that marks a start/end token."""
    return note == "special" or note.startswith("chunk ")


class TokensPane(Vertical):
    """Prompt editors and the token table.

    | Key | Action |
    | :- | :- |
    | tab | Move between the prompt, the negative prompt and the table |
    | home / end | In the table: the first / last token |
    | ctrl+t | Show the other editor's tokens |
    | enter | In the table: show this token's heat map in the sweep |
    """

    BINDINGS = [Binding("ctrl+t", "toggle_source", "Other prompt's tokens",
                        tooltip="Switch the table between the prompt and the negative prompt")]

    DEFAULT_CSS = """
    TokensPane #editors { height: auto; }
    TokensPane Input { width: 1fr; }
    TokensPane #tables { height: 1fr; }
    TokensPane #tables.-stacked { layout: vertical; }
    """

    #: below this many columns two tokenizers' tables (SDXL) stack instead of standing side by side:
    #: a table with its text and note columns needs about 75
    SIDE_BY_SIDE = 150

    source: reactive[str] = reactive("prompt")  #: whose tokens the table shows
    breakdown: reactive[TokenBreakdown | None] = reactive(None, always_update=True)  #: the first tokenizer's

    class PromptChanged(Message):
        """The prompt or negative prompt was edited (the sweep uses both)."""

        def __init__(self, prompt: str, negative: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.negative = negative

    class TokenizersReady(Message):
        """The model's tokenizers are resolved: ``[(label, tokenizer)]``, two for SDXL (the app keeps them)."""

        def __init__(self, tokenizers: list[tuple[str, object]]) -> None:
            super().__init__()
            self.tokenizers = tokenizers

    class TokenPicked(Message):
        """A prompt token was picked in the table (enter): the sweep overlays its heat map."""

        def __init__(self, position: int, piece: str) -> None:
            super().__init__()
            self.position = position
            self.piece = piece

    def __init__(self, prompt: str = "", model_spec: str = "tiny", **kwargs) -> None:
        super().__init__(**kwargs)
        self._initial = prompt
        self._model_spec = model_spec
        self.tokenizer = None  #: the (first) tokenizer, once resolved
        self.tokenizers: list[tuple[str, object]] = []  #: (label, tokenizer): two for SDXL
        self.breakdowns: list[TokenBreakdown] = []  #: one per tokenizer, for the shown editor

    def compose(self) -> ComposeResult:
        with Vertical(id="editors"):
            yield Input(self._initial, placeholder="Prompt", id="prompt", select_on_focus=False, max_length=MAX_PROMPT_CHARS)
            yield Input("", placeholder="Negative prompt (replaces the unconditional \"\")", id="negative",
                        select_on_focus=False, max_length=MAX_PROMPT_CHARS)
        with Horizontal(id="tables"):
            yield TokenColumn()

    def on_mount(self) -> None:
        self.load_tokenizer()

    @work(thread=True, exclusive=True, group="tokenizer")
    def load_tokenizer(self) -> None:
        """Resolve the model's tokenizers without weights, on a thread (reads vocab files)."""
        try:
            toks = resolve_tokenizers(self._model_spec)
        except Exception as exc:  # a bad --model: fall back to SD 1.x's CLIP tokenizer
            self.app.call_from_thread(self.notify, f"{exc} — showing SD 1.x's CLIP tokenizer.",
                                      severity="warning")
            toks = [("CLIP", clip_tokenizer())]
        self.app.call_from_thread(self.set_tokenizers, toks)

    def set_tokenizers(self, tokenizers: list[tuple[str, object]]) -> None:
        """Show one table per tokenizer (side by side for SDXL), then tokenize what is typed."""
        self.tokenizers = tokenizers
        self.tokenizer = tokenizers[0][1]
        self.post_message(self.TokenizersReady(tokenizers))
        tables = self.query_one("#tables", Horizontal)
        for n in range(len(self.query(TokenColumn)), len(tokenizers)):
            tables.mount(TokenColumn(suffix=f"-{n + 1}"))
        self._arrange()
        self.call_after_refresh(self._after_tables)

    def on_resize(self) -> None:
        self._arrange()

    def _arrange(self) -> None:
        """Two tables side by side when both fit whole, one above the other otherwise."""
        self.query_one("#tables").set_class(len(self.tokenizers) > 1 and self.size.width < self.SIDE_BY_SIDE,
                                            "-stacked")

    def _after_tables(self) -> None:
        self.refresh_tokens()
        self.post_message(self.PromptChanged(self.prompt, self.negative))
        self.post_message(PaneReady("tokens"))

    @property
    def prompt(self) -> str:
        return self.query_one("#prompt", Input).value

    @property
    def negative(self) -> str:
        return self.query_one("#negative", Input).value

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.source = "negative" if event.input.id == "negative" else "prompt"
        self.refresh_tokens()
        self.post_message(self.PromptChanged(self.prompt, self.negative))

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.source != "prompt" or not self.breakdowns:
            return
        row = event.data_table.get_row_at(event.cursor_row)
        if not str(row[0]):  # a prompt edit's segment row: no token
            return
        if not str(row[0]).isdigit():  # a dropped token never reaches the encoder: it has no heat map
            self.notify("A dropped token never reaches the text encoder: it has no heat map.", timeout=4)
            return
        self.post_message(self.TokenPicked(int(str(row[0])), str(row[1])))

    def watch_source(self) -> None:
        if self.is_mounted:
            self.refresh_tokens()

    def action_toggle_source(self) -> None:
        self.source = "negative" if self.source == "prompt" else "prompt"

    def refresh_tokens(self) -> None:
        """Re-tokenize the shown editor's text with every tokenizer and update the tables."""
        if self.tokenizer is None:
            return
        text = self.negative if self.source == "negative" else self.prompt
        if len(text) > SYNC_CHARS:  # a long paste: tokenized off the UI thread, the newest text wins
            self._tokenize_off_thread(text, self.source)
            return
        self._show_breakdowns(text, self.source, [breakdown(tok, text, steps=self.steps) for _, tok in self.tokenizers])

    @property
    def steps(self) -> int:
        """The step count prompt edits are laid out over: the settings' (what the sweep starts with)."""
        return app_context(self).settings.steps

    @work(thread=True, exclusive=True, group="tokens")
    def _tokenize_off_thread(self, text: str, source: str) -> None:
        results = [breakdown(tok, text, steps=self.steps) for _, tok in self.tokenizers]
        self.app.call_from_thread(self._show_breakdowns, text, source, results)

    def _show_breakdowns(self, text: str, source: str, results: list[TokenBreakdown]) -> None:
        if source != self.source or text != (self.negative if source == "negative" else self.prompt):
            return  # typed on meanwhile: a newer breakdown is on its way
        self.breakdowns = results
        self.breakdown = self.breakdowns[0]

    def watch_breakdown(self, result: TokenBreakdown | None) -> None:
        if result is None:
            return
        which = "negative prompt" if self.source == "negative" else "prompt"
        columns = list(self.query(TokenColumn))
        for column, (label, _), result_i in zip(columns, self.tokenizers, self.breakdowns):
            column.show(which if len(self.tokenizers) == 1 else f"{which} · {label}", result_i)
