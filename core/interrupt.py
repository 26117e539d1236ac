"""ctrl+c before a command can stop cleanly: the run ends at once, quietly, with exit code 130.

Python turns SIGINT into a ``KeyboardInterrupt`` wherever the main thread is, also inside an ``import``:
in the first second of ``generate`` that printed a traceback, or left a half-imported module behind
(diffusers then failed with a ``RecursionError``, reported as an internal error). ``quiet()`` installs a
handler that writes ``sd-explorer: interrupted`` and exits 130 without unwinding; commands that can stop
gracefully (``fashion train``: a checkpoint) install their own handler over it, and the TUI gets Python's
default back before Textual starts (``default()``). Headless outputs are written atomically
(``core.atomic``), so exiting at once never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading


def _exit_now(signum, frame) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        os.write(2, b"\nsd-explorer: interrupted\n")
    os._exit(128 + int(signum))


def quiet():
    """Install the quiet handler for SIGINT (main thread only); returns what to give ``restore``."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, _exit_now)


def restore(previous) -> None:
    """Put back the handler ``quiet`` replaced."""
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)


def default() -> None:
    """Python's own handler (``KeyboardInterrupt``) again: for the TUI, which takes ctrl+c as a key."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
