"""Loading Stable Diffusion models the way users have them: ``tiny``, a local folder, or a Hub id.

Every source ends up as a local diffusers folder that is loaded component by component with
``from_pretrained(..., use_safetensors=True)``: safetensors only (pickled ``.bin`` weights are refused,
since unpickling can run code), never ``trust_remote_code``, and no network when ``HF_HUB_OFFLINE`` is
set (or ``--offline``): Hub ids then come from the local Hugging Face cache or fail with the fix.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .devices import dtype_name, pick_device, pick_dtype
from .errors import UserError
from .hub import offline  # core.models.offline stays importable
from .schema import read_json_file

REFETCH = "re-download or re-save the model"

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TINY = ASSETS / "tiny-sd"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
XL_PIPELINES = {"StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"}  #: the refiner's class is the second
SUPPORTED_PIPELINES = {"StableDiffusionPipeline"} | XL_PIPELINES
LATER = {"StableDiffusion3Pipeline": "SD3", "FluxPipeline": "Flux"}
COMPONENTS = ("text_encoder", "unet", "vae", "scheduler")
#: SD 1.x / 2.x VAE latent -> RGB, applied to the x0 estimate (docs: model-shapes.md)
SD_PREVIEW = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
              [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
SDXL_PREVIEW = [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
                [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
SDXL_PREVIEW_BIAS = [0.1084, -0.0175, -0.0011]


def resolve_folder(spec: str) -> Path:
    """``tiny`` | a local folder | a Hub id -> the local folder that holds the pipeline."""
    if spec == "tiny":
        return TINY
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"--model {spec} is a file: pass the diffusers folder that holds model_index.json.")
        return path
    if not HUB_ID.match(spec):
        raise UserError(f"--model {spec}: no such folder; pass tiny, a local diffusers folder or a Hub id like org/name.")
    from huggingface_hub import snapshot_download

    patterns = ["model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors"]
    try:
        return Path(snapshot_download(spec, allow_patterns=patterns, local_files_only=offline()))
    except Exception as exc:  # huggingface_hub raises several types here; all mean "not available"
        if offline():
            raise UserError(
                f"--model {spec} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
                "download it once online, or pass a local folder."
            ) from exc
        from .hub import OFFLINE_HOWTO, reachable

        if not reachable():
            raise UserError(f"--model {spec} is not in the Hugging Face cache and the Hub cannot be reached (no network): "
                            f"connect once to download it, pass a local folder, or {OFFLINE_HOWTO}.") from exc
        raise UserError(f"--model {spec} could not be fetched ({type(exc).__name__}): check the id and your login.") from exc


def read_index(folder: Path) -> dict:
    """``model_index.json``, checked: a pipeline we support, with every component present."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        if (folder / "config.json").is_file() or (folder / "diffusion_pytorch_model.safetensors").is_file():
            raise UserError(f"{folder} holds a single model, not a pipeline: pass the folder above it with model_index.json.")
        raise UserError(f"{folder} is not a diffusers pipeline (no model_index.json): pass a folder saved by save_pretrained.")
    index = read_json_file(index_file, REFETCH)
    cls = index.get("_class_name")
    if cls is None:
        raise UserError(f"{index_file} has no _class_name: {REFETCH}.")
    if not isinstance(cls, str):
        raise UserError(f"{folder} asks for custom pipeline code ({cls}), which is never run: "
                        "use a standard SD 1.x, 2.x or SDXL folder.")
    if cls in LATER:
        raise UserError(f"{folder} is an {LATER[cls]} pipeline, which is not supported yet: use an SD 1.x or 2.x model.")
    if cls not in SUPPORTED_PIPELINES:
        raise UserError(f"{folder} is a {cls}, not supported: use an SD 1.x, 2.x or SDXL model.")
    needed = COMPONENTS + (("text_encoder_2",) if cls in XL_PIPELINES else ())
    if cls in XL_PIPELINES and _absent(index, "text_encoder"):  # the refiner: only OpenCLIP bigG
        needed = tuple(n for n in needed if n != "text_encoder")
    for name in needed:
        if not (folder / name).is_dir():
            raise UserError(f"{folder} has no {name}/ folder: the download is incomplete; fetch the model again.")
    for name in [n for n in needed if n != "scheduler"]:
        sub = folder / name
        if not any(sub.glob("*.safetensors")):
            if any(sub.glob("*.bin")) or any(sub.glob("*.ckpt")) or any(sub.glob("*.pt")):
                raise UserError(f"{sub} has only pickle weights (.bin), refused because unpickling can run code: "
                                "convert them to safetensors or use a safetensors download.")
            raise UserError(f"{sub} has no weights: the download is incomplete; fetch the model again.")
    for name in needed:  # every component's config: a JSON object, before any weights load
        config = folder / name / ("scheduler_config.json" if name == "scheduler" else "config.json")
        read_json_file(config, REFETCH)
    scheduler_class(index, index_file)
    return index


def scheduler_class(index: dict, index_file: Path):
    """The diffusers scheduler class ``model_index.json`` names (``"scheduler": ["diffusers", "PNDMScheduler"]``)."""
    import diffusers

    entry = index.get("scheduler", [None, "PNDMScheduler"])
    name = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
    cls = getattr(diffusers, name, None) if isinstance(name, str) and name.isidentifier() else None
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        raise UserError(f"{index_file}: scheduler must name a diffusers scheduler class, e.g. "
                        f'["diffusers", "PNDMScheduler"], not {json.dumps(entry)[:60]}: fix the file or {REFETCH}.')
    return cls


def _absent(index: dict, name: str) -> bool:
    """A component the index leaves out (``[null, null]`` or no entry), as the refiner's first text encoder."""
    entry = index.get(name)
    return not entry or not isinstance(entry, list) or entry[0] is None


def _is_refiner(folder: Path, unet_cfg: dict) -> bool:
    """SDXL refiner: its UNet adds 5 time ids (original size, crop, aesthetic score) to the pooled text
    instead of base's 6 (original size, crop, target size); its model_index says ``requires_aesthetics_score``."""
    index_file = folder / "model_index.json"
    index = read_json_file(index_file, REFETCH) if index_file.is_file() else {}
    if index.get("requires_aesthetics_score") is True:
        return True
    te2 = folder / "text_encoder_2" / "config.json"
    pooled = read_json_file(te2, REFETCH).get("projection_dim") if te2.is_file() else None
    time_dim = unet_cfg.get("addition_time_embed_dim")
    width = unet_cfg.get("projection_class_embeddings_input_dim")
    numbers = [v for v in (pooled, time_dim, width) if isinstance(v, int) and not isinstance(v, bool)]
    return len(numbers) == 3 and width - pooled == 5 * time_dim


def detect_family(folder: Path) -> str:
    """``sdxl`` / ``sdxl-refiner`` (text+time added conditioning; 6 or 5 time ids), else ``sd1`` / ``sd2``
    from the UNet's cross-attention width (768 / 1024) and its projection style."""
    cfg = read_json_file(folder / "unet" / "config.json", REFETCH)
    if cfg.get("addition_embed_type") == "text_time":
        return "sdxl-refiner" if _is_refiner(folder, cfg) else "sdxl"
    if cfg.get("cross_attention_dim") == 1024 or cfg.get("use_linear_projection"):
        return "sd2"
    return "sd1"


def resolve_tokenizer(spec: str, subfolder: str = "tokenizer"):
    """The model's tokenizer without loading any weights (for the token pane before the model loads)."""
    folder = resolve_folder(spec)
    if (folder / subfolder).is_dir():
        from transformers import CLIPTokenizer

        try:
            return CLIPTokenizer.from_pretrained(str(folder / subfolder))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise UserError(f"{folder / subfolder} is not a readable CLIP tokenizer "
                            f"({type(exc).__name__}: {_first_line(exc)}): {REFETCH}.") from None
    from .clip_vocab import clip_tokenizer

    return clip_tokenizer()


def resolve_tokenizers(spec: str) -> list[tuple[str, object]]:
    """Every tokenizer the model uses, labelled: one for SD 1.x/2.x, two for SDXL (CLIP ViT-L, OpenCLIP bigG),
    OpenCLIP bigG alone for the SDXL refiner."""
    folder = resolve_folder(spec)
    if (folder / "tokenizer_2").is_dir() and not (folder / "tokenizer").is_dir():
        return [("OpenCLIP bigG", resolve_tokenizer(spec, "tokenizer_2"))]
    if (folder / "tokenizer_2").is_dir():
        return [("CLIP ViT-L", resolve_tokenizer(spec)), ("OpenCLIP bigG", resolve_tokenizer(spec, "tokenizer_2"))]
    return [("CLIP", resolve_tokenizer(spec))]


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

    def predict(self, latents: torch.Tensor, t, cond: torch.Tensor, added: dict | None = None) -> torch.Tensor:
        """One UNet call: the noise (or v) prediction for every row (SDXL: ``added`` conditions)."""
        if self.unet_forward is not None:
            return self.unet_forward(latents, t, cond) if added is None else self.unet_forward(latents, t, cond, added)
        return self.unet(latents, t, encoder_hidden_states=cond, added_cond_kwargs=added).sample

    @property
    def name(self) -> str:
        """``tiny``, a Hub id as given, or a local folder's own name (paths are long for a header)."""
        if self.spec == "tiny" or not Path(self.spec).expanduser().is_dir():
            return self.spec
        return Path(self.spec).expanduser().resolve().name

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


def check_config(cls, path: Path) -> None:
    """A diffusers model config checked against ``cls``'s own defaults before it is built: a value whose
    default is a whole number must be one (positive where the default is), a number must be a number, text
    text, true/false a bool. Diffusers checks little itself; a ``-1`` or ``"x"`` would otherwise fail mid-run."""
    import inspect

    config = read_json_file(path, REFETCH)
    blocks = config.get("block_out_channels")
    side = config.get("sample_size")
    if side is not None and isinstance(blocks, list) and not (
            _number(side, positive=True) and side >= 2 ** max(len(blocks) - 1, 0)):
        raise UserError(f"{path}: sample_size = {json.dumps(side)[:40]} is too small for {len(blocks)} blocks: {REFETCH}.")
    for name, param in inspect.signature(cls.__init__).parameters.items():
        default, value = param.default, config.get(name, param.default)
        if name not in config or default is inspect.Parameter.empty or default is None or value == default:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):  # SD 2.x/SDXL give some of these per block, as lists
            ok = all(_number(v, positive=default > 0) for v in (value if isinstance(value, list) else [value]))
        elif isinstance(default, str):
            ok = value is None or isinstance(value, str)
        elif isinstance(default, tuple) and default:
            items = value if isinstance(value, list) else [value]
            ok = all(isinstance(v, str) if isinstance(default[0], str) else _number(v, positive=True) for v in items)
        else:
            ok = True
        if not ok:
            raise UserError(f"{path}: {name} = {json.dumps(value)[:40]} does not fit (default {json.dumps(default)[:40]}): "
                            f"{REFETCH}.")


def _complete(cls, folder: Path, kw: dict):
    """A transformers text encoder whose weights all fit its config: transformers would re-initialise (random
    weights, a warning) what does not, and every image would be nonsense without an error."""
    model, info = cls.from_pretrained(folder, output_loading_info=True, **kw)
    bad = [k for key in ("missing_keys", "mismatched_keys") for k in info.get(key) or []]
    if bad:
        first = bad[0][0] if isinstance(bad[0], tuple) else bad[0]
        raise UserError(f"{folder}: {len(bad)} weight(s) do not fit config.json (e.g. {first}): {REFETCH}.")
    return model


def _number(value, positive: bool) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value > 0 or not positive))


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
        raise UserError(f"--vae {spec} could not be loaded ({_first_line(exc)}): pass a safetensors AutoencoderKL.") from None


def quiet_progress_bars() -> None:
    """Loading bars from diffusers/transformers would garble the TUI and CLI output."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    tlog.set_verbosity_error()  # load reports would garble the output; what matters is checked (``_complete``)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


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
    except Exception as exc:  # noqa: BLE001 - the libraries raise many types for a config value they cannot take
        raise UserError(f"{folder} could not be loaded ({type(exc).__name__}: {_first_line(exc)}): "
                        "a config.json holds a value these models cannot take; fetch the model again.") from None
    if dt == torch.float16 and vae_model.config.get("force_upcast", False) and family.startswith("sdxl"):
        vae_model.to(torch.float32)  # SDXL's VAE overflows in fp16 (diffusers upcasts it the same way)
    factors, bias = _preview(folder, unet.config.in_channels, family)
    model = LoadedModel(spec=spec, folder=folder, family=family, tokenizer=tokenizer,
                        text_encoder=text_encoder, unet=unet, vae=vae_model, scheduler=scheduler,
                        device=dev, dtype=dt, preview_factors=factors, preview_bias=bias,
                        tokenizer_2=tokenizer_2, text_encoder_2=text_encoder_2,
                        force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", False)))
    if fast or (fast is None and dev.type == "cuda"):
        from .fast import enable_fast_paths
        from .inputs import check_compile_mode

        enable_fast_paths(model, compile=check_compile_mode(compile), compile_background=background_compile,
                          status=status)
    return model
