"""Loading Stable Diffusion models the way users have them: ``tiny``, a local folder, or a Hub id
(found and checked by ``core.model_folder``), into a ``LoadedModel``.

Every source ends up as a local diffusers folder that is loaded component by component with
``from_pretrained(..., use_safetensors=True)``: safetensors only (pickled ``.bin`` weights are refused,
since unpickling can run code), never ``trust_remote_code``, and no network when ``HF_HUB_OFFLINE`` is
set (or ``--offline``): Hub ids then come from the local Hugging Face cache or fail with the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .devices import dtype_name, pick_device, pick_dtype
from .errors import UserError
from .model_folder import (REFETCH, check_config, detect_family, first_line, read_index, resolve_folder,
                           resolve_tokenizer, scheduler_class)
from .paths import expand
from .schema import read_json_file
from .fast import enable_fast_paths
from .inputs import check_compile_mode
from .model_checks import check_files, check_loaded


#: SD 1.x / 2.x VAE latent -> RGB, applied to the x0 estimate (docs: model-shapes.md)
SD_PREVIEW = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
              [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
SDXL_PREVIEW = [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
                [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
SDXL_PREVIEW_BIAS = [0.1084, -0.0175, -0.0011]


@dataclass
class LoadedModel:
    """A Stable Diffusion model's parts, on one device, ready for ``core.sampler``."""

    spec: str
    folder: Path
    family: str  #: sd1, sd2, sdxl or sdxl-refiner
    tokenizer: object  #: the first tokenizer (the refiner's only one: OpenCLIP bigG's, also ``tokenizer_2``)
    text_encoder: torch.nn.Module | None  #: None for the SDXL refiner (it reads OpenCLIP bigG only)
    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler: object
    device: torch.device
    dtype: torch.dtype
    preview_factors: torch.Tensor = field(repr=False)
    preview_bias: torch.Tensor | None = field(default=None, repr=False)
    #: optional fast path for one UNet call, ``(latents, t, encoder_hidden_states) -> prediction``,
    #: installed by ``core.fast`` (CUDA graphs / torch.compile); None: the plain eager UNet
    unet_forward: object = field(default=None, repr=False)
    tokenizer_2: object = field(default=None, repr=False)  #: SDXL's second tokenizer
    text_encoder_2: torch.nn.Module | None = field(default=None, repr=False)  #: SDXL's OpenCLIP bigG
    force_zeros_for_empty_prompt: bool = False  #: SDXL base: the empty negative prompt is all zeros
    #: ``core.attention``'s per-model state (an ``AttentionState``: its accumulator and graph caches), made there
    attention_state: object = field(default=None, repr=False)

    def predict(self, latents: torch.Tensor, t, cond: torch.Tensor, added: dict | None = None) -> torch.Tensor:
        """One UNet call: the noise (or v) prediction for every row (SDXL: ``added`` conditions)."""
        if self.unet_forward is not None:
            return self.unet_forward(latents, t, cond) if added is None else self.unet_forward(latents, t, cond, added)
        return self.unet(latents, t, encoder_hidden_states=cond, added_cond_kwargs=added).sample

    @property
    def name(self) -> str:
        """``tiny``, a Hub id as given, or a local folder's own name (paths are long for a header)."""
        if self.spec == "tiny" or not expand(self.spec).is_dir():
            return self.spec
        return expand(self.spec).resolve().name

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.get("prediction_type", "epsilon")

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def default_size(self) -> tuple[int, int]:
        side = int(self.unet.config.sample_size) * self.vae_scale_factor
        return side, side

    def describe(self) -> str:
        """``tiny (sd1, cpu, fp32)``; on CUDA the engine too: ``(sd1, cuda, fp16, graphs)``, ``… compiled``."""
        engine = getattr(self.unet_forward, "engine", None)
        return f"{self.name} ({self.family}, {self.device.type}, {dtype_name(self.dtype)}{', ' + engine if engine else ''})"

    def swap_in_compiled(self) -> list[str]:
        """Between jobs: run the UNet compiled for every shape whose background compile finished
        (``core.fast.FastUNet.swap_in``); returns those shapes. Nothing to do without one."""
        swap = getattr(self.unet_forward, "swap_in", None)
        return swap() if swap is not None else []


def _preview(folder: Path, latent_channels: int, family: str = "sd1") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Latent->RGB factors: the folder's own ``preview_factors.json`` if it ships one, else SD's."""
    custom = folder / "preview_factors.json"
    if custom.is_file():
        return _custom_preview(custom, latent_channels)
    if latent_channels == 4 and family.startswith("sdxl"):
        return torch.tensor(SDXL_PREVIEW), torch.tensor(SDXL_PREVIEW_BIAS)
    if latent_channels == 4:
        return torch.tensor(SD_PREVIEW), None
    return torch.full((latent_channels, 3), 1.0 / latent_channels), None


def _complete(cls, folder: Path, kw: dict):
    """A transformers text encoder whose weights all fit its config: transformers would re-initialise (random
    weights, a warning) what does not, and every image would be nonsense without an error."""
    model, info = cls.from_pretrained(folder, output_loading_info=True, **kw)
    bad = [k for key in ("missing_keys", "mismatched_keys") for k in info.get(key) or []]
    if bad:
        first = bad[0][0] if isinstance(bad[0], tuple) else bad[0]
        raise UserError(f"{folder}: {len(bad)} weight(s) do not fit config.json (e.g. {first}): {REFETCH}.")
    return model


def _custom_preview(path: Path, latent_channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A folder's ``preview_factors.json``: ``factors`` (one row of 3 numbers per latent channel), ``bias`` (3 or null)."""
    data = read_json_file(path, "fix it, or delete it to use SD's factors")

    def numbers(value, rows: int | None) -> bool:
        if rows is not None:
            return isinstance(value, list) and len(value) == rows and all(numbers(v, None) for v in value)
        return (isinstance(value, list) and len(value) == 3 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value))

    if not numbers(data.get("factors"), latent_channels):
        raise UserError(f"{path}: factors must be {latent_channels} rows of 3 numbers (latent channel -> RGB): "
                        "fix it, or delete it to use SD's factors.")
    bias = data.get("bias")
    if bias is not None and not numbers(bias, None):
        raise UserError(f"{path}: bias must be 3 numbers (or null): fix it, or delete it to use SD's factors.")
    return torch.tensor(data["factors"], dtype=torch.float32), torch.tensor(bias, dtype=torch.float32) if bias else None


def load_vae(spec: str, dtype: torch.dtype, device: torch.device):
    """A VAE from a folder (``config.json`` + safetensors), a pipeline folder, or a Hub id."""
    from diffusers import AutoencoderKL

    folder = resolve_folder(spec)
    if (folder / "vae" / "config.json").is_file():
        folder = folder / "vae"
    if not (folder / "config.json").is_file():
        raise UserError(f"--vae {spec} has no config.json: pass an AutoencoderKL folder or a pipeline folder.")
    try:
        return AutoencoderKL.from_pretrained(folder, torch_dtype=dtype, use_safetensors=True).to(device)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise UserError(f"--vae {spec} could not be loaded ({first_line(exc)}): pass a safetensors AutoencoderKL.") from None


def quiet_progress_bars() -> None:
    """Loading bars from diffusers/transformers would garble the TUI and CLI output."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    tlog.set_verbosity_error()  # load reports would garble the output; what matters is checked (``_complete``)


def load_model(spec: str = "tiny", *, device: str | None = None, dtype: str | None = None,
               vae: str | None = None, fast: bool | None = None, compile: str | None = None,
               background_compile: bool = False, status: Callable[[str], None] | None = None) -> LoadedModel:
    """Load ``spec`` onto ``device`` in ``dtype`` (see ``core.devices``), optionally swapping the VAE.

    ``fast``: the GPU fast paths of ``core.fast`` (CUDA graphs, ...); None = on for CUDA.
    ``compile``: a ``torch.compile`` mode for the UNet under the graphs (``core.inputs.COMPILE_MODES``), or
    ``"off"``/None; ``background_compile``: compile on a thread of its own while the eager graphs run, swapped in
    between jobs (``LoadedModel.swap_in_compiled``), else before the first image (the CLI).
    ``status(text)``: told what the fast paths do, now and later (graph captures, their cost).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    quiet_progress_bars()
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    folder = resolve_folder(spec)
    index = read_index(folder)

    check_files(folder, index)
    family = detect_family(folder)
    refiner = family == "sdxl-refiner"
    if not refiner and not (folder / "text_encoder").is_dir():
        raise UserError(f"{folder} has no text_encoder/ but is not an SDXL refiner: fetch the complete model.")
    kw = dict(torch_dtype=dt, use_safetensors=True)
    from transformers import CLIPTextConfig

    for name in ("text_encoder", "text_encoder_2"):
        if (folder / name / "config.json").is_file():
            check_config(CLIPTextConfig, folder / name / "config.json")
    check_config(scheduler_class(index, folder / "model_index.json"), folder / "scheduler" / "scheduler_config.json")
    try:
        text_encoder = None if refiner else _complete(CLIPTextModel, folder / "text_encoder", kw)
        tokenizer = resolve_tokenizer(str(folder), "tokenizer_2" if refiner else "tokenizer")
        text_encoder_2 = tokenizer_2 = None
        if family.startswith("sdxl"):
            text_encoder_2 = _complete(CLIPTextModelWithProjection, folder / "text_encoder_2", kw)
            tokenizer_2 = tokenizer if refiner else resolve_tokenizer(str(folder), "tokenizer_2")
        check_config(UNet2DConditionModel, folder / "unet" / "config.json")
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", **kw)
        if not vae:
            check_config(AutoencoderKL, folder / "vae" / "config.json")
        vae_model = load_vae(vae, dt, dev) if vae else AutoencoderKL.from_pretrained(folder / "vae", **kw)
        scheduler = scheduler_class(index, folder / "model_index.json").from_pretrained(folder / "scheduler")
        for module in (text_encoder, text_encoder_2, unet, vae_model):
            if module is not None:
                module.to(dev).eval().requires_grad_(False)
    except (UserError, MemoryError):
        raise
    except OSError as exc:  # the environment (a cache folder, a HOME that is not writable), not the model
        where = getattr(exc, "filename", None)
        if where and not str(Path(where).expanduser()).startswith(str(folder)):
            raise UserError(f"{spec} could not be loaded because {where} cannot be used ({exc.strerror or exc}): "
                            "it is not part of the model; fix its permissions, or set SD_EXPLORER_CACHE / HF_HOME "
                            "to a writable folder.") from None
        raise UserError(f"{folder} could not be loaded ({type(exc).__name__}: {first_line(exc)}): "
                        "the files are damaged or unreadable; fix their permissions or fetch the model again.") from None
    except Exception as exc:  # noqa: BLE001 - the libraries raise many types for a config value they cannot take
        raise UserError(f"{folder} could not be loaded ({type(exc).__name__}: {first_line(exc)}): "
                        "a config.json holds a value these models cannot take; fetch the model again.") from None
    if dt == torch.float16 and vae_model.config.get("force_upcast", False) and family.startswith("sdxl"):
        vae_model.to(torch.float32)  # SDXL's VAE overflows in fp16 (diffusers upcasts it the same way)
    factors, bias = _preview(folder, unet.config.in_channels, family)
    model = LoadedModel(spec=spec, folder=folder, family=family, tokenizer=tokenizer,
                        text_encoder=text_encoder, unet=unet, vae=vae_model, scheduler=scheduler,
                        device=dev, dtype=dt, preview_factors=factors, preview_bias=bias,
                        tokenizer_2=tokenizer_2, text_encoder_2=text_encoder_2,
                        force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", False)))
    check_loaded(model)
    if fast or (fast is None and dev.type == "cuda"):
        enable_fast_paths(model, compile=check_compile_mode(compile), compile_background=background_compile,
                          status=status)
    return model
