"""The last-resort guard: an exception nobody expected becomes one line; its traceback goes to a log file.

Bad input has its own ``UserError`` message everywhere; this is the safety net for bugs. The CLI
(``core.cli.main``), the worker thread (``core.jobs``) and the app (``tui.app``) all report through
``report``: ``internal error: KeyError: 'unet' (please report; details in ~/.local/state/sd-explorer/errors.log)``
and never print a traceback on the terminal. ``SD_EXPLORER_STATE`` moves the folder (tests do).
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
import tempfile

ENV_VAR = "SD_EXPLORER_STATE"


def state_dir() -> Path:
    """``$SD_EXPLORER_STATE``, else the platform's per-user state folder (``~/.local/state/sd-explorer``)."""
    try:
        if env := os.environ.get(ENV_VAR):
            return Path(env).expanduser()
        try:
            from platformdirs import user_state_dir
        except ImportError:  # a bare environment: the XDG default is right on Linux
            return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "sd-explorer"
        return Path(user_state_dir("sd-explorer"))
    except (RuntimeError, KeyError, OSError):  # no home directory (HOME unset, the user unknown, or it vanished)
        return Path(tempfile.gettempdir()) / f"sd-explorer-state-{os.getuid() if hasattr(os, 'getuid') else 0}"


def log_file() -> Path:
    """Where tracebacks of internal errors go."""
    return state_dir() / "errors.log"


def record(exc: BaseException, log: Path | None = None, context: str = "") -> Path | None:
    """Append ``exc``'s traceback to ``log`` (default ``log_file()``); the path, or None if it cannot be written."""
    try:  # the guard itself must never raise: no HOME, a non-UTF-8 byte in argv (a surrogate), a full disk
        log = log or log_file()
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {context}\n{text}\n")
    except Exception:  # noqa: BLE001 - any failure here means: no log file
        return None
    return log


def message(exc: BaseException, log: Path | None) -> str:
    """The one line a person sees: what broke, that it is ours, where the details are."""
    text = " ".join(str(exc).split())[:200].encode("utf-8", "backslashreplace").decode("utf-8")
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    where = f"details in {log}" if log else "no log file could be written"
    return f"internal error: {what} (please report; {where})"


def report(exc: BaseException, log: Path | None = None, context: str = "") -> str:
    """``record`` then ``message``: the traceback to the log file, one line back."""
    return message(exc, record(exc, log, context))
