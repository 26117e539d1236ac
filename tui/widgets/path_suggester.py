"""Path completion for an ``Input``: the first folder or matching file under what is typed so far."""

from __future__ import annotations

from pathlib import Path

from textual.suggester import Suggester


class PathSuggester(Suggester):
    """Completes the typed path to the first matching folder, or file with one of ``suffixes``.

    ``suffixes`` empty: folders only (e.g. a folder of IDX files).
    """

    def __init__(self, suffixes: set[str] | frozenset[str] = frozenset()) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.suffixes = {s.lower() for s in suffixes}

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        path = Path(value).expanduser()
        folder, stem = (path, "") if value.endswith("/") else (path.parent, path.name)
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return None
        for entry in entries:
            if not entry.name.startswith(stem) or entry.name == stem or entry.name.startswith("."):
                continue
            if entry.is_dir():
                return value[: len(value) - len(stem)] + entry.name + "/"
            if entry.suffix.lower() in self.suffixes:
                return value[: len(value) - len(stem)] + entry.name
        return None
