"""Errors that reach a person: one line that says what is wrong and how to fix it."""

from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """Bad input from the user (a path, a number, a model name).

    The message is one line and names the fix. CLIs print it and exit with code 2; the TUI shows
    it as a notification. Never wrap programming errors in it.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class Cancelled(Exception):
    """A job was cancelled through its cancel event; work done so far is discarded cleanly."""


def run_main(main: Callable[[], object]) -> None:
    """``python -m`` entry point: a ``UserError`` becomes one line on stderr and exit code 2."""
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
