"""Settings: defaults < the config file in the XDG config dir < command-line flags.

The file is ``$XDG_CONFIG_HOME/sd-explorer/config.toml`` (``~/.config/sd-explorer/config.toml``),
or the one ``--config`` names::

    model = "tiny"            # tiny | a diffusers folder | a Hub id (from the local cache)
    device = "auto"           # auto | cuda | cuda:1 | mps | cpu
    dtype = "auto"            # auto | fp32 | fp16 | bf16
    compile = ""              # CUDA: "" compiles the UNet ("default") in the background; "off"; or "max-autotune-no-cudagraphs"
    refiner = ""              # SDXL: a refiner folder or Hub id; sweeps then hand off to it at refiner_at
    refiner_at = 0.8          # the base's share of the schedule
    output_dir = "outputs"    # where saved grids and checkpoints go
    theme = "textual-dark"    # any Textual theme name
    graphics = "cells"        # cells (half blocks, works everywhere) | auto (Kitty/Sixel if the terminal has it) | sixel | kitty
    data = ""                 # Fashion-MNIST: a folder of IDX files or a .parquet file ("" = the Hub's fashion_mnist)
    keep_checkpoints = 3      # the training pane keeps this many newest checkpoints per run (0 = all)

The training pane writes ``data`` back here (``remember``) when a run starts from a new source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable
import json
import tempfile

from ..core.errors import UserError
from ..core.inputs import COMPILE_CHOICES, MAX_SEED, check_text, is_fraction
from ..core.settings import MAX_STEPS
from ..core.paths import expand, what_is
from ..core.atomic import write_replacing
from ..core.crash import state_dir

PANES = ("tokens", "sweep", "latents", "training", "exercises")


CHAPTER_PROMPT = "An oil painting of a collie in a top hat"
TINY_PROMPT = "a photo of an ankle boot"


@dataclass(frozen=True)
class Settings:
    model: str = "tiny"
    vae: str | None = None
    device: str | None = None
    dtype: str | None = None
    #: CUDA: a torch.compile mode for the UNet, compiled in the background (None: "default"; "off": none)
    compile: str | None = None
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
    keep_checkpoints: int = 3  #: the training pane keeps the newest N checkpoints of a run (0 = all)
    #: the settings file in use (``--config``, else the default one): where it came from, not a setting
    config_file: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.prompt is None:
            # the embedded model only knows Fashion-MNIST's garments; real models get the chapter's prompt
            default = TINY_PROMPT if self.model == "tiny" else CHAPTER_PROMPT
            object.__setattr__(self, "prompt", default)

    def log_path(self) -> Path:
        if self.log_file:
            return Path(self.log_file)

        return state_dir() / "worker.log"


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/sd-explorer`` (``~/.config/sd-explorer``)."""
    try:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    except (RuntimeError, KeyError):  # no home directory: no settings file either (the defaults)
        base = str(Path(tempfile.gettempdir()) / "sd-explorer-no-home")
    return Path(base) / "sd-explorer"


def default_config_file() -> Path:
    return config_dir() / "config.toml"


def _text(example: str, optional: bool = False, choices: tuple[str, ...] = ()) -> Callable[[Any], str]:
    def check(value):
        if value is None and optional:
            return None

        if not isinstance(value, str):
            raise ValueError(f"must be text in quotes, e.g. {example}")
        check_text(value, "the value")
        if choices and value not in choices:
            raise ValueError(f"must be one of {', '.join(repr(c) for c in choices)}")
        return value
    return check


def _whole(low: int, high: int, example: int) -> Callable[[Any], int]:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, e.g. {example}")
        return value
    return check


def _fraction(value):
    if not is_fraction(value):
        raise ValueError("must be a number between 0 and 1, e.g. 0.8")
    return value


def _theme(value):
    from textual.theme import BUILTIN_THEMES

    _text('"textual-dark"')(value)
    if value not in BUILTIN_THEMES:
        raise ValueError(f"is not a theme; use one of {', '.join(sorted(BUILTIN_THEMES))}")
    return value


def _compile_modes() -> tuple[str, ...]:
    return ("", *COMPILE_CHOICES)


#: every key of the settings file and how its value is checked at load (a new key is one line here)
FILE_KEYS: dict[str, Callable[[Any], Any]] = {
    "model": _text('"tiny"'),
    "vae": _text('"stabilityai/sd-vae-ft-ema"', optional=True),
    "device": _text('"auto"', optional=True),
    "dtype": _text('"auto"', optional=True, choices=("auto", "fp32", "fp16", "bf16")),
    "compile": lambda v: _text('""', optional=True, choices=_compile_modes())(v),
    "refiner": _text('""', optional=True),
    "refiner_at": _fraction,
    "output_dir": _text('"outputs"'),
    "theme": _theme,
    "graphics": _text('"cells"', choices=("cells", "auto", "sixel", "kitty")),  # tui.widgets.graphics.MODES
    "data": _text('"fashion_mnist"', optional=True),
    "seed": lambda v: _whole(0, MAX_SEED, 0)(v),
    "steps": lambda v: _whole(1, MAX_STEPS, 30)(v),
    "prompt": lambda v: _bounded_prompt(_text('"a photo of an ankle boot"', optional=True), v),
    "pane": _text('"tokens"', choices=PANES),
    "keep_checkpoints": _whole(0, 1_000_000, 3),  # 0 keeps all
}


def _bounded_prompt(check, value):
    check(value)
    if isinstance(value, str) and len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"is {len(value)} characters long, more than {MAX_PROMPT_CHARS}: shorten it")
    return value


def check_values(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Every value checked by ``FILE_KEYS``; the first bad one is a ``UserError`` naming ``where`` and the key."""
    for key, value in values.items():
        try:
            FILE_KEYS[key](value)
        except (ValueError, UserError) as exc:
            shown = repr(value) if len(repr(value)) <= 30 else repr(value)[:30] + "…"
            raise UserError(f"{where}: {key} = {shown} {exc}.") from None
    return values


MAX_FILE_BYTES = 256 * 1024  #: a settings file is a few lines; this bounds the work of reading it
MAX_PROMPT_CHARS = 20_000  #: a prompt (settings file, prompt fields; CLIP reads 75 tokens a chunk: far past it)
MAX_FIELD_CHARS = 4096  #: any other field (paths, numbers, value lists): a paste beyond it is cut


def read_config(path: Path | None = None, *, required: bool = False) -> dict[str, Any]:
    """The config file's known keys; a missing default file is fine, a broken one is a ``UserError``."""
    path = path or default_config_file()
    if not path.is_file():
        if what_is(path) is not None:  # a folder, a FIFO, /dev/null: there, but not a settings file
            raise UserError(f"--config {path} is {what_is(path)}, not a settings file: pass a .toml file.")
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
        if path.stat().st_size > MAX_FILE_BYTES:  # a 2 MB prompt made --screenshot hang
            raise UserError(f"{path} is {path.stat().st_size // 1024} KB; a settings file is at most "
                            f"{MAX_FILE_BYTES // 1024} KB: shorten it (prompts: at most {MAX_PROMPT_CHARS} characters).")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except PermissionError:
        raise UserError(f"{path} cannot be read (permission denied): fix its permissions (chmod +r) or delete it.") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid TOML ({exc}): fix or delete it.") from None
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise UserError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(FILE_KEYS))}.")
    return check_values(data, str(path))


def _check(settings: Settings) -> Settings:
    """The merged settings (file and flags), every key checked as the file's are."""
    check_values({k: getattr(settings, k) for k in FILE_KEYS}, "settings")
    return settings


def remember(key: str, value: str, path: str | Path | None = None) -> Path:
    """Write ``key = "value"`` into the settings file (replacing the key's line), atomically.

    Other lines, comments included, stay as they are; the file and its folder are created if needed.
    """
    if key not in FILE_KEYS:
        raise UserError(f"unknown setting {key!r}")
    path = Path(path) if path else default_config_file()
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    line = f"{key} = {json.dumps(str(value), ensure_ascii=False)}"  # a JSON string is a TOML basic string
    at = [i for i, text in enumerate(lines) if text.split("=", 1)[0].strip() == key and "=" in text]
    if at:
        lines[at[0]] = line
    else:
        lines.append(line)

    text = "\n".join(lines) + "\n"
    return write_replacing(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_settings(args: Any = None) -> Settings:
    """Merge defaults, the config file and the parsed flags (``None`` flags do not override)."""
    cfg_path = getattr(args, "config", None)
    data = read_config(expand(cfg_path, "--config") if cfg_path else None, required=bool(cfg_path))
    settings = replace(Settings(), **data)
    flag_map = {"model": "model", "vae": "vae", "device": "device", "dtype": "dtype", "compile": "compile", "refiner": "refiner", "refiner_at": "refiner_at",
                "out": "output_dir", "seed": "seed", "steps": "steps", "prompt": "prompt", "pane": "pane", "screenshot": "screenshot",
                "data": "data", "theme": "theme", "log_file": "log_file"}
    overrides = {}
    for flag, key in flag_map.items():
        value = getattr(args, flag, None) if args is not None else None
        if value is not None:
            overrides[key] = str(value) if key in ("output_dir", "screenshot") else value
    overrides["config_file"] = str(expand(cfg_path, "--config")) if cfg_path else str(default_config_file())
    names = {f.name for f in fields(Settings)}
    if "prompt" not in data and "prompt" not in overrides:
        overrides["prompt"] = None  # pick the default prompt for the final model
    return _check(replace(settings, **{k: v for k, v in overrides.items() if k in names}))
