"""Where torch.compile keeps what it built, so the next launch on this machine compiles in seconds.

Inductor (``TORCHINDUCTOR_CACHE_DIR``) and Triton (``TRITON_CACHE_DIR``) cache generated kernels and
whole compiled graphs on disk; by default they live under ``/tmp``, which many GPU boxes wipe. The app
points both at the user's cache directory (platformdirs: ``~/.cache/sd-explorer/torch-compile`` on
Linux), shared by the Stable Diffusion UNet and the Fashion-MNIST trainer and sampler. Measured on an
H200 (docs/benchmarks.md): a UNet shape that takes ~53 s to compile the first time takes ~8 s in a
second process with the cache kept.

A variable the user set wins. A cache directory that cannot be created or written is named in one
line and compiling goes on with torch's own default (the environment is at fault, not the model).
No torch import here: ``use()`` must run before the first compile, and is cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
import getpass
import tempfile

#: the variables the compilers read; set only where the user has not
INDUCTOR_VAR = "TORCHINDUCTOR_CACHE_DIR"
TRITON_VAR = "TRITON_CACHE_DIR"
#: overrides the folder (tests; users who keep caches elsewhere)
OVERRIDE_VAR = "SD_EXPLORER_COMPILE_CACHE"


@dataclass(frozen=True)
class CacheChoice:
    """Where compile artifacts go: ``folder`` (None: torch's default) and one line saying why."""

    folder: Path | None
    note: str


def default_folder() -> Path:
    """``$SD_EXPLORER_COMPILE_CACHE``, else the user's cache directory's ``torch-compile`` folder."""
    override = os.environ.get(OVERRIDE_VAR)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sd-explorer", appauthor=False)) / "torch-compile"


def torch_default() -> str:
    """Where Inductor caches when nobody says (``/tmp/torchinductor_USER``); Inductor itself writes this into
    ``TORCHINDUCTOR_CACHE_DIR`` once it first looks (diffusers' import can make it look), so that value is not
    the user's choice."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return os.path.join(tempfile.gettempdir(), "torchinductor_" + user.replace("\\", "_"))


def use(folder: Path | None = None) -> CacheChoice:
    """Point Inductor's and Triton's disk caches at ``folder`` (default: ``default_folder()``) unless the
    user set them; returns where they go. Idempotent; never raises for the environment."""
    if os.environ.get(INDUCTOR_VAR) and os.environ[INDUCTOR_VAR] != torch_default():
        return CacheChoice(Path(os.environ[INDUCTOR_VAR]), f"compile cache: {os.environ[INDUCTOR_VAR]} (from {INDUCTOR_VAR})")
    try:
        folder = folder or default_folder()
        (folder / "triton").mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except (OSError, RuntimeError, KeyError) as exc:  # RuntimeError/KeyError: no home directory to be found
        why = getattr(exc, "strerror", None) or type(exc).__name__
        return CacheChoice(None, f"compile cache: {folder} is not writable ({why}); compiles are kept in torch's "
                                 f"default place only (set {OVERRIDE_VAR} to a writable folder)")
    os.environ[INDUCTOR_VAR] = str(folder)
    if not os.environ.get(TRITON_VAR) or os.environ[TRITON_VAR].startswith(torch_default()):
        os.environ[TRITON_VAR] = str(folder / "triton")
    return CacheChoice(folder, f"compile cache: {folder}")
