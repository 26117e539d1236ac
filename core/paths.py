"""Paths people type: expanded safely, described truthfully, and an output file checked before any work.

- ``expand(text, what)``: ``~`` and ``~user`` expanded; an unknown user (``~nosuchuser/x``, where
  ``Path.expanduser`` raises) or a missing home directory is a one-line ``UserError``, never a crash.
- ``what_is(path)``: ``"a folder"``, ``"a FIFO"``, ``"a device"``, ``"a file"``, or ``None`` when nothing is
  there, so a message never says "does not exist" for ``/dev/null``.
- ``check_output_file(text, what)``: the one check of a file the program will create (``--screenshot``):
  its folder exists or can be made and is writable, the name is not a folder, a device or a FIFO, and no
  file is there already (outputs never overwrite). Run it before the work whose result it will hold.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import UserError


def expand(text: str | os.PathLike, what: str = "the path") -> Path:
    """``Path(text).expanduser()``, with an unknown user or a missing home directory as a ``UserError``."""
    try:
        return Path(text).expanduser()
    except (RuntimeError, KeyError) as exc:  # "Could not determine home directory", an unknown ~user
        head = str(text).split("/", 1)[0]
        raise UserError(f"{what} {str(text)[:80]!r}: {head} is not a home directory here ({exc}): "
                        "write the full path.") from None


def what_is(path: Path) -> str | None:
    """What is at ``path`` in words (``a folder``, ``a FIFO``, ``a device``, ``a file``), or None."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a file"


def check_output_file(text: str | os.PathLike, what: str = "the output file") -> Path:
    """The path of a new file to write, checked before the work: a one-line ``UserError`` otherwise."""
    path = expand(text, what)
    there = what_is(path)
    if there == "a file":
        raise UserError(f"{what} {path} already exists; outputs never overwrite a file: choose another name.")
    if there is not None:
        raise UserError(f"{what} {path} is {there}, not a file name: name a new file, e.g. {path / 'shot.svg'}"
                        if there == "a folder" else f"{what} {path} is {there}, not a file name: name a new file.")
    parent = path.parent
    blocker = next((p for p in [parent, *parent.parents] if what_is(p) not in (None, "a folder")), None)
    if blocker is not None:
        raise UserError(f"{what} {path}: {blocker} is {what_is(blocker)}, not a folder: choose another place.")
    existing = next((p for p in [parent, *parent.parents] if what_is(p) == "a folder"), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: cannot write to {existing} (permission denied or read-only): "
                        "choose a writable folder, or fix its permissions.")
    if existing is not None and hasattr(os, "statvfs"):
        try:
            read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        if read_only:
            raise UserError(f"{what} {path}: {existing} is on a read-only file system: choose a writable folder.")
    return path
