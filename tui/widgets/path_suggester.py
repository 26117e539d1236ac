"""Path completion for an ``Input``: the first folder or matching file under what is typed so far.

The folder is read off the UI thread (``asyncio.to_thread``) and at most ``MAX_ENTRIES`` of its entries,
so a folder of a million files costs a bounded moment, never a frozen app; ``~nosuchuser/`` and other
paths that cannot be expanded simply get no suggestion.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

from textual.suggester import Suggester

from ...core.errors import UserError
from ...core.paths import expand

MAX_ENTRIES = 2000  #: entries of one folder read for a suggestion
MAX_TYPED = 4096  #: longer text is not a path anyone types: no suggestion


def first_match(value: str, suffixes: set[str]) -> str | None:
    """The completion of ``value`` (blocking: run it off the UI thread)."""
    try:
        path = expand(value)
    except (UserError, ValueError):
        return None
    folder, stem = (path, "") if value.endswith("/") else (path.parent, path.name)
    try:
        with os.scandir(folder) as it:
            entries = sorted(itertools.islice(it, MAX_ENTRIES), key=lambda e: e.name)
        for entry in entries:
            if not entry.name.startswith(stem) or entry.name == stem or entry.name.startswith("."):
                continue
            if entry.is_dir():
                return value[: len(value) - len(stem)] + entry.name + "/"
            if Path(entry.name).suffix.lower() in suffixes:
                return value[: len(value) - len(stem)] + entry.name
    except (OSError, ValueError):
        return None
    return None


class PathSuggester(Suggester):
    """Completes the typed path to the first matching folder, or file with one of ``suffixes``.

    ``suffixes`` empty: folders only (e.g. a folder of IDX files).
    """

    def __init__(self, suffixes: set[str] | frozenset[str] = frozenset()) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.suffixes = {s.lower() for s in suffixes}

    async def get_suggestion(self, value: str) -> str | None:
        if not value or len(value) > MAX_TYPED or any(ord(ch) < 32 for ch in value):
            return None
        return await asyncio.to_thread(first_match, value, self.suffixes)
