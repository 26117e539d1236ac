"""Writing files atomically: the one temp-file scheme for every file sd-explorer writes.

A file is written to a hidden temporary name in its target folder, then published in one step:

- ``write_new(folder, names, writer)`` hard-links it to the first *free* name of ``names`` (``x-0001.png``,
  ``x-0002.png`` ...; ``ckpt-000100.safetensors``, ``ckpt-000100-1.safetensors`` ...). A link never
  replaces an existing file, so two writers in one folder cannot overwrite each other (PNGs, checkpoints,
  weights);
- ``write_replacing(path, writer)`` renames it onto a fixed name: for files that are meant to be replaced
  (a model card, a tokenizer cache, a preview fit, the settings file);
- ``write_folder(path, writer, overwrite=...)`` does the same for a whole folder (a diffusers model folder):
  ``writer`` fills a hidden staging folder beside it, which then takes the folder's name in one rename.

Either way a crash leaves no half-written file under the final name. Temporary names carry the host and
process id (``.tmp-<host>-<pid>-<random><suffix>``): a save killed mid-way (``kill -9``, a power cut)
leaves one behind, and the next write to that folder removes those whose process is gone. Published
files get ordinary permissions (``0666 & ~umask``: 0644 with the usual umask), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import UserError
from .paths import expand

TMP_PREFIX = ".tmp-"
Writer = Callable[[Path], object]


def _host() -> str:
    return "".join(ch for ch in socket.gethostname() if ch.isalnum())[:32] or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid we can ask about: leave its file alone
    return True


def clean_stale(folder: Path) -> list[Path]:
    """Remove this host's temporary files in ``folder`` whose writing process no longer runs."""
    removed = []
    prefix = f"{TMP_PREFIX}{_host()}-"
    try:
        entries = list(folder.glob(f"{prefix}*"))
    except OSError:
        return removed
    for path in entries:
        pid_text = path.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fix(folder: Path) -> str:
    return f"choose a writable folder (--out), or fix the permissions of {folder}"


def check_writable(folder: str | Path) -> Path:
    """Prove that files can be written in ``folder`` (or, where it does not exist yet, in the nearest folder
    above it, where the first write will create it); else a one-line ``UserError``.

    Call it before slow work (training, sampling), so a bad ``--out`` fails in a second, not after an epoch.
    It creates nothing: a command refused later (a bad data folder, a damaged checkpoint) leaves no empty
    ``--out`` folder behind.
    """
    path = expand(folder, "the output folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise UserError(f"cannot write to {path}: {existing} is a file, not a folder; {_fix(path)}.")
    with _temp(existing, ".probe") as tmp:
        tmp.write_bytes(b"")
    return path


@contextlib.contextmanager
def _temp(folder: Path, suffix: str) -> Iterator[Path]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder")
        clean_stale(folder)
        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{_host()}-{os.getpid()}-", suffix=suffix, dir=folder)
        os.close(fd)
    except FileExistsError:
        raise UserError(f"cannot write to {folder}: a file of that name is in the way; {_fix(folder)}.") from None
    except OSError as exc:
        raise UserError(f"cannot write to {folder} ({exc.strerror or exc}): {_fix(folder)}.") from None
    tmp = Path(name)
    try:
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _save_failed(exc: BaseException) -> bool:
    """An error of the disk or the file system while writing (full disk, read-only, quota, I/O)."""
    if isinstance(exc, OSError):
        return True
    safetensors = sys.modules.get("safetensors")
    error = getattr(safetensors, "SafetensorError", None)
    return error is not None and isinstance(exc, error)


def _write(tmp: Path, writer: Writer, folder: Path) -> None:
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs are ordinary files
    except Exception as exc:
        if not _save_failed(exc):
            raise
        why = getattr(exc, "strerror", None) or " ".join(str(exc).split())[:120] or type(exc).__name__
        raise UserError(f"could not save into {folder} ({why}): free some space or choose another --out folder.") from None


def _link(tmp: Path, target: Path) -> bool:
    """Publish ``tmp`` as ``target`` unless that name exists; False when it does."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
    # file systems without hard links: claim the name exclusively, then move the data in
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    os.replace(tmp, target)
    return True


def write_new(folder: str | Path, names: Iterable[str], writer: Writer) -> Path:
    """Call ``writer(tmp)`` on a temp file in ``folder``, then publish it under the first free name of ``names``.

    ``names`` are file names (with their suffix, which the temp file shares). Never replaces a file.
    """
    folder = expand(folder, "the output folder")
    names = iter(names)
    first = next(names)
    with _temp(folder, Path(first).suffix) as tmp:
        _write(tmp, writer, folder)
        try:
            for name in itertools.chain([first], names):
                target = folder / name
                if not target.exists() and _link(tmp, target):
                    return target
        except OSError as exc:
            raise UserError(f"could not save into {folder} ({exc.strerror or exc}): {_fix(folder)}.") from None
    raise UserError(f"{folder} has no free name left for {first}: choose another --out folder.")


def numbered(stem: str, suffix: str, limit: int = 100_000) -> Iterator[str]:
    """``stem-0001.suffix``, ``stem-0002.suffix`` ... (the outputs' names)."""
    return (f"{stem}-{n:04d}{suffix}" for n in range(1, limit))


def then_numbered(stem: str, suffix: str, limit: int = 100_000) -> Iterator[str]:
    """``stem.suffix``, then ``stem-1.suffix``, ``stem-2.suffix`` ... (checkpoints keep their plain name first)."""
    yield f"{stem}{suffix}"
    yield from (f"{stem}-{n}{suffix}" for n in range(1, limit))


def write_replacing(path: str | Path, writer: Writer) -> Path:
    """Call ``writer(tmp)`` on a temp file next to ``path``, then rename it onto ``path`` (replacing it)."""
    path = expand(path, "the output file")
    with _temp(path.parent, path.suffix) as tmp:
        _write(tmp, writer, path.parent)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise UserError(f"could not save {path} ({exc.strerror or exc}): {_fix(path.parent)}.") from None
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``write_replacing`` for bytes already in memory."""
    return write_replacing(path, lambda tmp: tmp.write_bytes(data))


def write_folder(path: str | Path, writer: Writer, *, overwrite: bool = False) -> Path:
    """Call ``writer(staging)`` on an empty hidden folder beside ``path``, then rename it onto ``path``.

    A non-empty ``path`` is replaced only with ``overwrite`` (else a ``UserError`` naming ``--overwrite``);
    the old folder is moved aside first and removed once the new one is in place. On any failure the
    staging folder is removed and ``path`` is left as it was.
    """
    path = Path(path).expanduser()
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise UserError(f"{path} already exists and is not empty: choose another --out or pass --overwrite.")
    prefix = f"{TMP_PREFIX}{_host()}-{os.getpid()}-"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    except OSError as exc:
        raise UserError(f"cannot write to {path.parent} ({exc.strerror or exc}): {_fix(path.parent)}.") from None
    old = None
    try:
        writer(staging)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; a model folder is an ordinary one
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not path.exists():  # put the old folder back
            with contextlib.suppress(OSError):
                os.replace(old / path.name, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path
