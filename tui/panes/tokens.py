"""Pane 1 — prompt and negative prompt, and what the model's tokenizer makes of them, per keystroke.

The tokenizer is resolved off the UI thread at start (no weights: ``core.models.resolve_tokenizer``)
so typing works while the model loads on the worker. Tokenizing is a few hundred microseconds, so
the table is rebuilt synchronously on every change: it never waits for the GPU worker.
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

from core.tokens import TokenBreakdown, breakdown
from tui.messages import PaneReady


class TokensPane(Vertical):
    """Prompt editors and the token table.

    | Key | Action |
    | :- | :- |
    | tab | Move between the prompt, the negative prompt and the table |
    | ctrl+t | Show the other editor's tokens |
    """

    BINDINGS = [Binding("ctrl+t", "toggle_source", "Other prompt's tokens")]

    DEFAULT_CSS = """
    TokensPane #editors { height: auto; }
    TokensPane Input { width: 1fr; }
    TokensPane #count { height: 1; padding: 0 1; }
    TokensPane #count.-over { color: $error; text-style: bold; }
    TokensPane DataTable { height: 1fr; }
    """

    source: reactive[str] = reactive("prompt")  #: whose tokens the table shows
    breakdown: reactive[TokenBreakdown | None] = reactive(None, always_update=True)

    class PromptChanged(Message):
        """The prompt or negative prompt was edited (the sweep uses both)."""

        def __init__(self, prompt: str, negative: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.negative = negative

    def __init__(self, prompt: str = "", model_spec: str = "tiny", **kwargs) -> None:
        super().__init__(**kwargs)
        self._initial = prompt
        self._model_spec = model_spec
        self.tokenizer = None
        self._shown: list[tuple[int, str, int, str]] = []  #: rows in the table now

    def compose(self) -> ComposeResult:
        with Vertical(id="editors"):
            yield Input(self._initial, placeholder="Prompt", id="prompt", select_on_focus=False)
            yield Input("", placeholder="Negative prompt (replaces the unconditional \"\")", id="negative",
                        select_on_focus=False)
        yield Label("loading tokenizer…", id="count")
        table = DataTable(id="token-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("pos", "piece", "id", "note")
        yield table

    def on_mount(self) -> None:
        self.load_tokenizer()

    @work(thread=True, exclusive=True, group="tokenizer")
    def load_tokenizer(self) -> None:
        """Resolve the tokenizer without weights, on a thread (reads vocab files)."""
        from core.models import resolve_tokenizer

        try:
            tok = resolve_tokenizer(self._model_spec)
        except Exception as exc:  # a bad --model: fall back to SD 1.x's CLIP tokenizer
            from core.clip_vocab import clip_tokenizer

            self.app.call_from_thread(self.notify, f"{exc} — showing SD 1.x's CLIP tokenizer.",
                                      severity="warning")
            tok = clip_tokenizer()
        self.app.call_from_thread(self.set_tokenizer, tok)

    def set_tokenizer(self, tokenizer) -> None:
        self.tokenizer = tokenizer
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

    def watch_source(self) -> None:
        if self.is_mounted:
            self.refresh_tokens()

    def action_toggle_source(self) -> None:
        self.source = "negative" if self.source == "prompt" else "prompt"

    def refresh_tokens(self) -> None:
        """Re-tokenize the shown editor's text and rebuild the table."""
        if self.tokenizer is None:
            return
        text = self.negative if self.source == "negative" else self.prompt
        self.breakdown = breakdown(self.tokenizer, text)

    def watch_breakdown(self, result: TokenBreakdown | None) -> None:
        if result is None:
            return
        count = self.query_one("#count", Label)
        which = "negative prompt" if self.source == "negative" else "prompt"
        line = f"{which}: {result.count}/{result.limit} tokens"
        if result.dropped:
            line += f" — {len(result.dropped)} dropped beyond the {result.window}-token window: {result.dropped_text!r}"
        count.update(line)
        count.set_class(bool(result.dropped), "-over")
        rows = []
        for tok in result.tokens:
            note = "special" if tok.special else ("dropped" if tok.dropped else "")
            rows.append((tok.position, tok.piece, tok.id, note))
        self._update_rows(rows)

    def _update_rows(self, rows: list[tuple[int, str, int, str]]) -> None:
        """Replace only the rows after the first difference (a keystroke changes one or two)."""
        table = self.query_one("#token-table", DataTable)
        same = 0
        for old, new in zip(self._shown, rows):
            if old != new:
                break
            same += 1
        for i in range(len(self._shown) - 1, same - 1, -1):
            table.remove_row(f"r{i}")
        for i, (pos, piece, tid, note) in enumerate(rows[same:], start=same):
            style = "dim italic" if note == "special" else ("strike red" if note == "dropped" else "")
            table.add_row(Text(str(pos), style=style), Text(piece, style=style), Text(str(tid), style=style),
                          Text(note, style=style), key=f"r{i}")
        self._shown = rows
