"""What a model folder must hold for the sampler to make an image of it: checked once, at load.

``core.models.load_model`` calls ``check_files(folder, index)`` before any weights load (cheap: the
safetensors headers and the scheduler and VAE configs) and ``check_loaded(model)`` after (the weights are
finite, the noise schedule lies in (0, 1), the tokenizer's window fits the text encoder). Each refusal is
one line naming the file and the fix; without them such a folder gave a black PNG and exit 0.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

from .errors import UserError
from .finite import VAE_SCALING, bad_tensor, scheduler_problem, vae_problem
from .schema import parse_json, read_json_file

REFETCH = "re-download or re-save the model"

#: diffusers scheduler classes the sampling loop can run (the named ones of ``core.schedulers`` and a few
#: more with the same interface); others (score-SDE, flow matching, IPNDM, Würstchen ...) are refused by name
RUNNABLE_SCHEDULERS = ("DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "EulerDiscreteScheduler",
                       "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "LMSDiscreteScheduler",
                       "DPMSolverSinglestepScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler",
                       "HeunDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
MAX_HEADER = 100 * 2**20


def check_scheduler_class(cls, where: Path) -> None:
    """Refuse a scheduler class the sampler cannot run, naming those it can."""
    if cls.__name__ not in RUNNABLE_SCHEDULERS:
        raise UserError(f"{where}: sd-explorer cannot sample with {cls.__name__}; it runs "
                        f"{', '.join(RUNNABLE_SCHEDULERS)}: name one of them in model_index.json, or pass --scheduler.")


def check_scheduler_config(config: dict, path: Path) -> None:
    """The scheduler config's words and numbers, against what the sampler does with them."""
    for key, choices in (("prediction_type", PREDICTION_TYPES), ("timestep_spacing", TIMESTEP_SPACINGS),
                         ("beta_schedule", BETA_SCHEDULES)):
        value = config.get(key)
        if key in config and value not in choices and not (key == "timestep_spacing" and value is None):
            raise UserError(f"{path}: {key} = {str(value)[:40]!r} is not one of {', '.join(choices)}: fix it or {REFETCH}.")
    steps = config.get("num_train_timesteps", 1000)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 100_000:
        raise UserError(f"{path}: num_train_timesteps = {str(steps)[:20]} must be a whole number from 2 to 100000: {REFETCH}.")
    start, end = config.get("beta_start", 0.0001), config.get("beta_end", 0.02)
    if config.get("trained_betas") is None and not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) and 0 < b < 1 for b in (start, end)):
        raise UserError(f"{path}: beta_start {start} and beta_end {end} must lie between 0 and 1 (SD: 0.00085 and "
                        f"0.012): fix it or {REFETCH}.")


def check_vae_config(config: dict, path: Path) -> None:
    """A VAE ``scaling_factor`` that is a sane number (SD 0.18215, SDXL 0.13025)."""
    factor = config.get("scaling_factor", 0.18215)
    lo, hi = VAE_SCALING
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not (
            math.isfinite(factor) and lo <= abs(factor) <= hi):
        raise UserError(f"{path}: scaling_factor = {str(factor)[:20]} is outside {lo:g} to {hi:g} "
                        f"(SD uses 0.18215, SDXL 0.13025): fix it or {REFETCH}.")


def safetensors_dtypes(path: Path) -> dict[str, str]:
    """``{tensor name: dtype}`` from a safetensors file's header alone (no weights read)."""
    try:
        with path.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > MAX_HEADER:
                raise ValueError(f"a header of {size} bytes")
            header = parse_json(fh.read(size))
    except PermissionError:
        raise UserError(f"{path} cannot be read (permission denied): fix its permissions.") from None
    except (OSError, struct.error, ValueError) as exc:
        raise UserError(f"{path} could not be loaded ({exc}): the files are damaged; fetch the model again.") from None
    if not isinstance(header, dict):
        raise UserError(f"{path} has a damaged header: fetch the model again.")
    return {k: v.get("dtype") for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def check_files(folder: Path, index: dict | None = None) -> None:
    """Before loading: weight dtypes (no bools; floats in the UNet and VAE) and the scheduler and VAE configs."""
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        for path in sorted((folder / part).glob("*.safetensors")) if (folder / part).is_dir() else []:
            for name, dtype in safetensors_dtypes(path).items():
                if dtype == "BOOL" or (part in ("unet", "vae") and dtype not in FLOAT_DTYPES):
                    raise UserError(f"{path}: weight {name} is {dtype}, not floating point: the file is damaged; "
                                    "fetch the model again.")
    sched = folder / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        check_scheduler_config(read_json_file(sched, REFETCH), sched)
    vae = folder / "vae" / "config.json"
    if vae.is_file():
        check_vae_config(read_json_file(vae, REFETCH), vae)


def check_tokenizer(tokenizer, where: Path | str, positions: int | None = None) -> None:
    """A tokenizer window (``model_max_length``) of 2 to the text encoder's positions (77 for CLIP)."""
    length = getattr(tokenizer, "model_max_length", 77)
    limit = positions or 1024
    if isinstance(length, bool) or not isinstance(length, int) or not 2 <= length <= limit:
        raise UserError(f"{where}: model_max_length = {str(length)[:20]} must be from 2 to {limit} "
                        f"(the text encoder's positions; CLIP: 77): fix tokenizer_config.json or {REFETCH}.")


def check_loaded(model) -> None:
    """After loading: finite weights, a usable noise schedule, a tokenizer window that fits its encoder."""
    for part in ("unet", "text_encoder", "text_encoder_2", "vae"):
        name = bad_tensor(getattr(model, part, None))
        if name is not None:
            raise UserError(f"{model.folder / part}: weight {name} holds NaN or inf values: the files are damaged; "
                            "fetch the model again.")
    why = scheduler_problem(model.scheduler) or vae_problem(model.vae)
    if why:
        raise UserError(f"{model.folder}: {why}.")
    for tok, enc, sub in ((model.tokenizer, model.text_encoder, "tokenizer"),
                          (getattr(model, "tokenizer_2", None), getattr(model, "text_encoder_2", None), "tokenizer_2")):
        if tok is not None and enc is not None:
            check_tokenizer(tok, model.folder / sub, getattr(enc.config, "max_position_embeddings", None))
