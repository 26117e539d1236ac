"""The standard streams as the environment gives them: a pipe that closes early, an ASCII-only locale.

``prepare()`` (called first by ``core.cli.main``) makes stdout and stderr write any text: characters the
encoding cannot hold (``PYTHONIOENCODING=ascii`` and an emoji in a prompt) come out as ``\\U0001f462``
escapes instead of a ``UnicodeEncodeError``. ``closed_early()`` ends a run whose reader went away
(``sd-explorer tokens … | head -2``) quietly, with exit code 0, as ``cat`` or ``grep`` do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

#: errors of a stream that the environment causes (a full disk under a redirect, a dead terminal)
STREAM_ERRNOS = (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG)


def prepare() -> None:
    """stdout/stderr never raise ``UnicodeEncodeError``: unencodable characters become escapes."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", "strict") == "strict" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(Exception):
                stream.reconfigure(errors="backslashreplace")


def closed_early() -> int:
    """After a ``BrokenPipeError`` on stdout: point stdout at /dev/null (so the interpreter's final flush
    cannot raise again) and return exit code 0."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def stream_failure(exc: BaseException) -> str | None:
    """The one line for a stream the environment broke (stdout onto a full disk), else None."""
    if isinstance(exc, OSError) and exc.errno in STREAM_ERRNOS and getattr(exc, "filename", None) is None:
        return (f"cannot write the output ({exc.strerror or exc}): free some space or redirect the output "
                "somewhere writable.")
    return None
