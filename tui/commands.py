"""Command palette entries (ctrl+p), made from the bindings themselves: every pane's and the app's keys.

An entry's title is ``<Pane>: <the binding's description>`` and its help line is the binding's
``tooltip`` with the key, so the footer, the help screen (``tui/help.py``), ``docs/keys.md`` and the
palette all read from one place: a binding. Pane entries switch to the pane, then run its action.
Bindings that only make sense inside a widget (arguments, e.g. ``scrub(-1)``; closing a screen) are
left out of the palette; the help screen still lists them.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from textual.app import SystemCommand
from textual.binding import Binding


class Command(NamedTuple):
    title: str  #: what the palette lists
    help: str  #: the line under it (the binding's tooltip, and its key)
    pane: str | None  #: the pane to show first, or None: an app action
    action: str  #: the action's name (``action_<name>`` on the pane or the app); "" to only show the pane


def _keys(binding: Binding) -> str:
    return binding.key.replace(",", " / ")


def pane_classes() -> list[tuple[str, str, type]]:
    """(title, pane id, class) of the panes, in tab order (``tui.panes.registry.PANES``)."""
    from .panes.registry import PANES

    return [(p.title, p.id, p.cls) for p in PANES]


def commands(app_bindings: list) -> list[Command]:
    """Every palette entry: the app's bindings (``app_bindings``: the app class's ``BINDINGS``, passed in so
    this module never imports the app; ``show_pane('x')`` ones become "Go to:"), then each pane's."""
    out = []
    for b in app_bindings:
        help_line = f"{b.tooltip or b.description} ({_keys(b)})"
        if b.action.startswith("show_pane("):
            out.append(Command(f"Go to: {b.description}", help_line, b.action[len("show_pane('"):-2], ""))
        elif "(" not in b.action:
            out.append(Command(b.description, help_line, None, b.action))
    for title, pane, cls in pane_classes():
        for b in cls.BINDINGS:
            if isinstance(b, Binding) and b.description and "(" not in b.action:
                out.append(Command(f"{title}: {b.description}", f"{b.tooltip or b.description} ({_keys(b)})",
                                   pane, b.action))
    return out


def explorer_commands(app) -> Iterable[SystemCommand]:
    """The palette entries, each bound to the app's action or ``app.run_pane_action``."""
    for c in commands(type(app).BINDINGS):
        if c.pane is None:
            yield SystemCommand(c.title, c.help, getattr(app, f"action_{c.action}"))
        else:
            yield SystemCommand(c.title, c.help, lambda p=c.pane, a=c.action: app.run_pane_action(p, a))
