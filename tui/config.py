"""Settings: defaults < the config file in the XDG config dir < command-line flags.

The file is ``$XDG_CONFIG_HOME/sd-explorer/config.toml`` (``~/.config/sd-explorer/config.toml``),
or the one ``--config`` names::

    model = "tiny"            # tiny | a diffusers folder | a Hub id (from the local cache)
    device = "auto"           # auto | cuda | cuda:1 | mps | cpu
    dtype = "auto"            # auto | fp32 | fp16 | bf16
    compile = ""              # CUDA: "default" or "max-autotune-no-cudagraphs" torch.compiles the UNet
    refiner = ""              # SDXL: a refiner folder or Hub id; sweeps then hand off to it at refiner_at
    refiner_at = 0.8          # the base's share of the schedule
    output_dir = "outputs"    # where saved grids and checkpoints go
    theme = "textual-dark"    # any Textual theme name
    graphics = "cells"        # cells (half blocks, works everywhere) | auto (Kitty/Sixel if the terminal has it) | sixel | kitty
    data = "fashion_mnist"    # Fashion-MNIST source: a folder of IDX files or the dataset name
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from core.errors import UserError

PANES = ("tokens", "sweep", "latents", "training", "exercises")


CHAPTER_PROMPT = "An oil painting of a collie in a top hat"
TINY_PROMPT = "a photo of an ankle boot"


@dataclass(frozen=True)
class Settings:
    model: str = "tiny"
    vae: str | None = None
    device: str | None = None
    dtype: str | None = None
    compile: str | None = None  #: a torch.compile mode for the UNet on CUDA (core.fields.COMPILE_MODES)
    refiner: str | None = None  #: SDXL refiner (folder or Hub id): sweeps run base -> refiner
    refiner_at: float = 0.8  #: the base's share of the schedule when a refiner is set
    output_dir: str = "outputs"
    theme: str = "textual-dark"
    graphics: str = "cells"  #: cells | auto (Kitty/Sixel through textual-image when available)
    data: str | None = None
    seed: int = 0
    steps: int = 30  #: sampling steps for the sweep and generated images
    prompt: str | None = None  #: None: a prompt the model knows (see ``__post_init__``)
    pane: str = "tokens"
    screenshot: str | None = None  #: headless: render ``pane``, save an SVG here, exit
    log_file: str | None = None

    def __post_init__(self) -> None:
        if self.prompt is None:
            # the embedded model only knows Fashion-MNIST's garments; real models get the chapter's prompt
            default = TINY_PROMPT if self.model == "tiny" else CHAPTER_PROMPT
            object.__setattr__(self, "prompt", default)

    def log_path(self) -> Path:
        if self.log_file:
            return Path(self.log_file)
        from core.crash import state_dir

        return state_dir() / "worker.log"


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/sd-explorer`` (``~/.config/sd-explorer``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sd-explorer"


def default_config_file() -> Path:
    return config_dir() / "config.toml"


_FILE_KEYS = {"model", "vae", "device", "dtype", "compile", "refiner", "refiner_at", "output_dir", "theme", "data", "seed", "steps", "prompt",
              "pane", "graphics"}


def read_config(path: Path | None = None, *, required: bool = False) -> dict[str, Any]:
    """The config file's known keys; a missing default file is fine, a broken one is a ``UserError``."""
    path = path or default_config_file()
    if not path.is_file():
        if required:
            raise UserError(f"--config {path}: no such file; create it or drop the flag.")
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise UserError(f"reading {path} needs Python 3.11+ or `pip install tomli`.") from None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid TOML ({exc}): fix or delete it.") from None
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(_FILE_KEYS))}.")
    return data


def _check(settings: Settings) -> Settings:
    if settings.pane not in PANES:
        raise UserError(f"unknown pane {settings.pane!r}: use one of {', '.join(PANES)}.")
    from core.fields import COMPILE_MODES, is_fraction

    if settings.compile and settings.compile not in COMPILE_MODES:
        raise UserError(f"compile = {settings.compile!r}: use {' or '.join(COMPILE_MODES)}, or leave it empty.")
    if not is_fraction(settings.refiner_at):
        raise UserError(f"refiner_at = {settings.refiner_at!r}: use a number between 0 and 1, e.g. 0.8.")
    if settings.graphics not in ("cells", "auto", "sixel", "kitty"):  # tui.widgets.graphics.MODES
        raise UserError(f"graphics = {settings.graphics!r}: use cells, auto, sixel or kitty.")
    if not isinstance(settings.seed, int):
        raise UserError(f"seed must be an integer, got {settings.seed!r}.")
    return settings


def load_settings(args: Any = None) -> Settings:
    """Merge defaults, the config file and the parsed flags (``None`` flags do not override)."""
    cfg_path = getattr(args, "config", None)
    data = read_config(Path(cfg_path).expanduser() if cfg_path else None, required=bool(cfg_path))
    settings = replace(Settings(), **data)
    flag_map = {"model": "model", "vae": "vae", "device": "device", "dtype": "dtype", "compile": "compile", "refiner": "refiner", "refiner_at": "refiner_at",
                "out": "output_dir", "seed": "seed", "steps": "steps", "prompt": "prompt", "pane": "pane", "screenshot": "screenshot",
                "data": "data", "theme": "theme", "log_file": "log_file"}
    overrides = {}
    for flag, key in flag_map.items():
        value = getattr(args, flag, None) if args is not None else None
        if value is not None:
            overrides[key] = str(value) if key in ("output_dir", "screenshot") else value
    names = {f.name for f in fields(Settings)}
    if "prompt" not in data and "prompt" not in overrides:
        overrides["prompt"] = None  # pick the default prompt for the final model
    return _check(replace(settings, **{k: v for k, v in overrides.items() if k in names}))
