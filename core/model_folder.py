"""A model folder, found and checked before any weights load: ``tiny``, a local folder or a Hub id resolved
to a local diffusers folder (``resolve_folder``), its ``model_index.json`` checked (``read_index``), its
family told from its configs (``detect_family``), each config checked against its class (``check_config``),
and its tokenizers read without weights (``resolve_tokenizers``). ``core.models.load_model`` builds on it.
No torch at import.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
import inspect

from .errors import UserError
from . import hub
from .hub import OFFLINE_HOWTO, offline
from .schema import read_json_file
from .paths import expand
from .clip_vocab import clip_tokenizer
from .model_checks import check_scheduler_class, check_tokenizer

REFETCH = "re-download or re-save the model"

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TINY = ASSETS / "tiny-sd"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
XL_PIPELINES = {"StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"}  #: the refiner's class is the second
SUPPORTED_PIPELINES = {"StableDiffusionPipeline"} | XL_PIPELINES
LATER = {"StableDiffusion3Pipeline": "SD3", "FluxPipeline": "Flux"}
COMPONENTS = ("text_encoder", "unet", "vae", "scheduler")


def resolve_folder(spec: str) -> Path:
    """``tiny`` | a local folder | a Hub id -> the local folder that holds the pipeline."""
    if spec == "tiny":
        return TINY
    path = expand(spec, "--model")
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
        if not hub.reachable():  # through the module: tests stand in for the probe
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

    check_scheduler_class(cls, index_file)
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


def family_before_loading(spec: str) -> str | None:
    """The family of ``tiny`` or a local folder from its config files (no weights, no torch), so a request the
    model cannot run fails before its loading; None for a Hub id (finding its folder may need the network)."""
    if spec != "tiny" and not expand(spec, "--model").is_dir():
        return None
    return detect_family(resolve_folder(spec))


def size_before_loading(spec: str) -> tuple[int, int] | None:
    """The default image size (width, height) of ``tiny`` or a local folder from its configs (no weights, no
    torch), as ``LoadedModel.default_size`` computes it; None for a Hub id or configs that do not say."""
    if spec != "tiny" and not expand(spec, "--model").is_dir():
        return None
    folder = resolve_folder(spec)
    side = read_json_file(folder / "unet" / "config.json", REFETCH).get("sample_size")
    blocks = read_json_file(folder / "vae" / "config.json", REFETCH).get("block_out_channels")
    if isinstance(side, bool) or not isinstance(side, int) or not isinstance(blocks, list) or not blocks:
        return None
    side *= 2 ** (len(blocks) - 1)
    return side, side


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

        for name in ("tokenizer_config.json", "special_tokens_map.json"):  # depth, UTF-8, an object
            if (folder / subfolder / name).is_file():
                read_json_file(folder / subfolder / name, REFETCH)
        try:
            tokenizer = CLIPTokenizer.from_pretrained(str(folder / subfolder))
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise UserError(f"{folder / subfolder} is not a readable CLIP tokenizer "
                            f"({type(exc).__name__}: {first_line(exc)}): {REFETCH}.") from None
        check_tokenizer(tokenizer, folder / subfolder)
        return tokenizer

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


def check_config(cls, path: Path) -> None:
    """A diffusers model config checked against ``cls``'s own defaults before it is built: a value whose
    default is a whole number must be one (positive where the default is), a number must be a number, text
    text, true/false a bool. Diffusers checks little itself; a ``-1`` or ``"x"`` would otherwise fail mid-run."""
    config = read_json_file(path, REFETCH)
    blocks = config.get("block_out_channels")
    side = config.get("sample_size")
    if side is not None and isinstance(blocks, list) and not (
            is_number(side, positive=True) and side >= 2 ** max(len(blocks) - 1, 0)):
        raise UserError(f"{path}: sample_size = {json.dumps(side)[:40]} is too small for {len(blocks)} blocks: {REFETCH}.")
    for name, param in inspect.signature(cls.__init__).parameters.items():
        default, value = param.default, config.get(name, param.default)
        if name not in config or default is inspect.Parameter.empty or default is None or value == default:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):  # SD 2.x/SDXL give some of these per block, as lists
            ok = all(is_number(v, positive=default > 0) for v in (value if isinstance(value, list) else [value]))
        elif isinstance(default, str):
            ok = value is None or isinstance(value, str)
        elif isinstance(default, tuple) and default:
            items = value if isinstance(value, list) else [value]
            ok = all(isinstance(v, str) if isinstance(default[0], str) else is_number(v, positive=True) for v in items)
        else:
            ok = True
        if not ok:
            raise UserError(f"{path}: {name} = {json.dumps(value)[:40]} does not fit (default {json.dumps(default)[:40]}): "
                            f"{REFETCH}.")


def is_number(value, positive: bool) -> bool:
    """A finite real number (not a bool), above 0 where ``positive``: a config value that can be used."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value > 0 or not positive))


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
