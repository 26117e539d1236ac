"""Errors that reach a person: one line that says what is wrong and how to fix it."""

from __future__ import annotations


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
