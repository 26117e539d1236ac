"""The key table: built from the bindings themselves, shown on the help screen and in docs/keys.md."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

#: keys that widgets give for free and that the panes rely on
BUILTIN = [
    ("Everywhere", "tab / shift+tab", "Move focus between fields, tables and image cells"),
    ("Everywhere", "ctrl+p", "Command palette: every action by name"),
    ("Everywhere", "ctrl+q", "Quit"),
    ("Prompt", "any text", "The token table follows every keystroke"),
    ("Prompt", "enter", "In the token table: the sweep overlays this token's heat map"),
    ("Prompt", "home / end", "In the token table: the first / last token"),
    ("Prompt", "(word) [word] (word:1.3)", "A1111 weights x1.1, /1.1, x1.3; BREAK starts a new 75-token chunk"),
    ("Latents", "right", "Accept the path completion"),
    ("Latents", "enter", "Encode/decode the image at the path"),
    ("Sweep", "tab", "Focus a finished cell to select it; the latents pane takes it with ctrl+g"),
    ("Sweep", "X / Y selects", "Grid axes; values 1,4,12 or 1-5 (+2) or 1-10 [5] or cat|dog"),
]


def _rows(scope: str, bindings: list) -> list[tuple[str, str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            rows.append((scope, b.key.replace(",", " / "), b.description))
    return rows


def key_rows(app_bindings: list) -> list[tuple[str, str, str]]:
    """(scope, keys, what it does) for every binding of the app (``app_bindings``: the app class's
    ``BINDINGS``, passed in so that this module never imports the app) and its panes."""
    from .panes.exercises import ExercisesPane
    from .panes.latents import LatentsPane
    from .panes.sweep import SweepPane
    from .panes.tokens import TokensPane
    from .panes.training import TrainingPane

    rows = _rows("Everywhere", app_bindings)
    for scope, pane in (("Prompt", TokensPane), ("Sweep", SweepPane), ("Latents", LatentsPane),
                        ("Training", TrainingPane), ("Exercises", ExercisesPane)):
        rows += _rows(scope, pane.BINDINGS)
    order = ["Everywhere", "Prompt", "Sweep", "Latents", "Training", "Exercises"]
    return sorted(rows + BUILTIN, key=lambda r: order.index(r[0]))


def key_markdown(app_bindings: list) -> str:
    """The key table as Markdown (docs/keys.md is exactly this, for ``ExplorerApp.BINDINGS``)."""
    lines = ["# Keys", "", "Every action is also in the command palette (ctrl+p).", "",
             "| Where | Keys | Action |", "| :- | :- | :- |"]
    lines += [f"| {scope} | `{keys}` | {what} |" for scope, keys, what in key_rows(app_bindings)]
    return "\n".join(lines) + "\n"


class HelpScreen(ModalScreen[None]):
    """All keys, from the bindings. escape, q or f1 closes it. At 80 columns it takes the whole screen
    and the action column wraps (rows grow) instead of running off the edge."""

    BINDINGS = [Binding("escape,q,f1", "app.pop_screen", "Close help")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90%; height: 90%; border: round $accent; background: $surface; }
    HelpScreen.-narrow > Vertical { width: 100%; height: 100%; }
    HelpScreen Label { padding: 0 1; color: $text-muted; width: 100%; }
    HelpScreen DataTable { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Keys"
            yield Label("Every action is also in the command palette (ctrl+p). escape closes this.")
            table = DataTable(cursor_type="row", zebra_stripes=True)
            yield table

    def on_resize(self) -> None:
        self.set_class(self.size.width < 100 or self.size.height < 30, "-narrow")
        self.call_after_refresh(self._fill)

    def _fill(self) -> None:
        """The rows, with the action column as wide as what is left (its text wraps onto more lines)."""
        rows = key_rows(self.app.BINDINGS)
        table = self.query_one(DataTable)
        where = max(len(r[0]) for r in rows)
        keys = min(max(len(r[1]) for r in rows), 18)
        # the table's width less the vertical scrollbar (there once the rows are), cell padding and a spare column
        action = max(20, table.size.width - table.styles.scrollbar_size_vertical - where - keys - 6 - 1)
        if getattr(self, "_widths", None) == (where, keys, action):
            return
        self._widths = (where, keys, action)
        row = table.cursor_row
        table.clear(columns=True)
        table.add_column("Where", width=where)
        table.add_column("Keys", width=keys)
        table.add_column("Action", width=action)
        for cells in rows:  # "[word]" is not markup
            table.add_row(*(Text(cell) for cell in cells), height=None)
        table.move_cursor(row=row)
