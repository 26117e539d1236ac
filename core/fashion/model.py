"""The chapter's class-conditional UNet, its noise schedule, and loading trained weights.

Weights files are safetensors with the model configuration as JSON in the file's metadata
(key ``fashion_model_config``), so a file is self-describing; training checkpoints store the
weights under the prefix ``model.``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
import inspect

import torch

from ..devices import pick_device
from .. import atomic, fast
from ..errors import UserError
from .checkpoint import CONFIG_KEY, newest_checkpoint
from ..paths import expand
from ..finite import is_finite
from ..schema import from_dict, parse_json

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "fashion"
SHIPPED_WEIGHTS = ASSETS / "ddpm.safetensors"
DOWN_BLOCKS = ("DownBlock2D", "AttnDownBlock2D", "ResnetDownsampleBlock2D", "AttnSkipDownBlock2D", "SkipDownBlock2D")
UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D", "ResnetUpsampleBlock2D", "AttnSkipUpBlock2D", "SkipUpBlock2D")
#: refuse configs above this many (estimated) parameters before building them: 200M fp32 weights plus
#: AdamW's two moments are ~2.4 GB; the chapter's model has 15.9M
MAX_PARAMETERS = 200_000_000


@dataclass
class ModelConfig:
    """UNet2DModel and DDPMScheduler settings; the defaults are the chapter's."""

    block_out_channels: tuple[int, ...] = (32, 64, 128, 256)
    layers_per_block: int = 2
    down_block_types: tuple[str, ...] | None = None
    up_block_types: tuple[str, ...] | None = None
    norm_num_groups: int = 32
    sample_size: int = 32
    num_classes: int = 10
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    extra: dict = field(default_factory=dict)

    @classmethod
    def tiny(cls) -> "ModelConfig":
        """A small variant (about 40k parameters, no attention) for CPU tests and quick runs."""
        return cls(
            block_out_channels=(8, 16),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
        )

    @classmethod
    def small(cls) -> "ModelConfig":
        """The CPU recipe's UNet (``core.fashion.recipes.CPU``): 1.0M parameters, four levels (16, 32, 64, 64
        channels) of one ResNet block each, no attention."""
        return cls(
            block_out_channels=(16, 32, 64, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D",) * 4,
            up_block_types=("UpBlock2D",) * 4,
            norm_num_groups=8,
        )

    def to_json(self) -> str:
        """The configuration as a JSON string (stored in safetensors metadata)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, where: str = "model config") -> "ModelConfig":
        """Inverse of :meth:`to_json` (tuples come back as tuples), checked: types, shapes, size."""
        try:
            raw = parse_json(text)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where} is not valid JSON ({exc}): use a file written by sd-explorer.") from None
        return cls.from_dict(raw, where)

    @classmethod
    def from_dict(cls, raw, where: str = "model config") -> "ModelConfig":
        """A checked config from a JSON object (a checkpoint's metadata, ``fashion train --config``'s ``model``)."""
        return from_dict(cls, raw, where).validate(where)

    def estimated_parameters(self) -> int:
        """A rough upper estimate of the UNet's size (3x3 convolutions of the ResNet blocks, attention)."""
        layers = self.layers_per_block  # x1.5: skip connections, embeddings, norms (the chapter's: 19M for 15.9M)
        return int(1.5 * sum(9 * c * c * (5 * layers + 4) + 4 * c * c * (2 * layers + 1) for c in self.block_out_channels))

    def validate(self, where: str = "model config") -> "ModelConfig":
        """Raise a one-line ``UserError`` for a UNet that cannot be built here, before any memory is taken."""
        levels = self.block_out_channels
        if not 1 <= len(levels) <= 6 or any(not 1 <= c <= 2048 for c in levels):
            raise UserError(f"{where}: block_out_channels {list(levels)} must be 1 to 6 widths of 1-2048, e.g. [32, 64, 128, 256].")
        if not 1 <= self.norm_num_groups <= min(levels) or any(c % self.norm_num_groups for c in levels):
            raise UserError(f"{where}: every width in block_out_channels {list(levels)} must be divisible by "
                            f"norm_num_groups ({self.norm_num_groups}): e.g. 32 with [32, 64, 128, 256].")
        if not 1 <= self.layers_per_block <= 8:
            raise UserError(f"{where}: layers_per_block must be from 1 to 8, not {self.layers_per_block}.")
        for key, names in (("down_block_types", DOWN_BLOCKS), ("up_block_types", UP_BLOCKS)):
            blocks = getattr(self, key)
            if blocks is None:
                if len(levels) != 4:
                    raise UserError(f"{where}: {key} must list one block per width ({len(levels)}) when there are not 4.")
                continue
            if len(blocks) != len(levels) or any(b not in names for b in blocks):
                raise UserError(f"{where}: {key} must list {len(levels)} of {', '.join(names)}.")
        if self.sample_size != 32:
            raise UserError(f"{where}: sample_size must be 32 (padded Fashion-MNIST), not {self.sample_size}.")
        if not 10 <= self.num_classes <= 1000:
            raise UserError(f"{where}: num_classes must be from 10 to 1000, not {self.num_classes}.")
        if not 2 <= self.num_train_timesteps <= 10_000:
            raise UserError(f"{where}: num_train_timesteps must be from 2 to 10000, not {self.num_train_timesteps}.")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise UserError(f"{where}: need 0 < beta_start < beta_end < 1, not {self.beta_start} and {self.beta_end}.")
        self._check_extra(where)
        size = self.estimated_parameters()
        if size > MAX_PARAMETERS:
            raise UserError(f"{where}: this UNet would have about {size / 1e6:.0f}M parameters (more than "
                            f"{MAX_PARAMETERS // 1_000_000}M): use smaller block_out_channels or fewer layers.")
        return self

    def _check_extra(self, where: str) -> None:
        """``extra``: further ``UNet2DModel`` arguments, JSON scalars only, none that the fields above set."""
        from diffusers import UNet2DModel

        allowed = set(inspect.signature(UNet2DModel.__init__).parameters) - {
            "self", "in_channels", "out_channels", "sample_size", "block_out_channels", "layers_per_block",
            "norm_num_groups", "num_class_embeds", "down_block_types", "up_block_types"}
        for key, value in self.extra.items():
            if key not in allowed:
                raise UserError(f"{where}: extra.{key} is not a UNet2DModel setting: remove it.")
            if isinstance(value, (dict, list)) or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                                    and not -1e6 <= value <= 1e6):
                raise UserError(f"{where}: extra.{key} = {value!r} is not a small number, text or true/false.")
            why = _extra_problem(key, value, inspect.signature(UNet2DModel.__init__).parameters[key].default)
            if why:
                raise UserError(f"{where}: extra.{key} = {value!r} {why}.")


#: ``extra`` settings that take one of a few words (diffusers raises mid-build, or later, for others)
EXTRA_CHOICES = {"time_embedding_type": ("positional", "fourier", "learned"),
                 "resnet_time_scale_shift": ("default", "scale_shift"),
                 "downsample_type": ("conv", "resnet"), "upsample_type": ("conv", "resnet"),
                 "mid_block_type": ("UNetMidBlock2D", None), "class_embed_type": (None, "timestep", "identity"),
                 "act_fn": ("silu", "swish", "mish", "gelu", "relu")}
#: ``extra`` numbers that must be whole and positive where set (0 divides by zero while building)
EXTRA_POSITIVE_INT = ("attention_head_dim", "attn_norm_num_groups", "time_embedding_dim", "downsample_padding")


def _extra_problem(key: str, value, default) -> str | None:
    """Why ``extra.key = value`` cannot build a UNet2DModel (a range or choice), else None."""
    if key in EXTRA_CHOICES:
        return None if value in EXTRA_CHOICES[key] else f"must be one of {', '.join(map(str, EXTRA_CHOICES[key]))}"
    if value is None:  # diffusers takes None where its default is None or it derives the value; not for numbers
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        return "cannot be null: remove it to use the default" if numeric and key not in EXTRA_POSITIVE_INT else None
    if key in EXTRA_POSITIVE_INT:
        ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or key == "downsample_padding" and value == 0)
        return None if ok and value <= 4096 else "must be a whole number from 1 to 4096"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return "must be a number"
        if key in ("dropout",) and not 0 <= value < 1:
            return "must be from 0 to below 1"
        if key == "norm_eps" and not 0 < value <= 1:
            return "must be above 0 and at most 1"
    if isinstance(default, str) and not isinstance(value, str):
        return "must be text"
    return None


def build_unet(cfg: ModelConfig | None = None):
    """``UNet2DModel(1, 1, 32, block_out_channels, num_class_embeds=10)`` as in the chapter."""
    from diffusers import UNet2DModel

    cfg = cfg or ModelConfig()
    kwargs = dict(
        in_channels=1,
        out_channels=1,
        sample_size=cfg.sample_size,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        norm_num_groups=cfg.norm_num_groups,
        num_class_embeds=cfg.num_classes,
        **cfg.extra,
    )
    if cfg.down_block_types is not None:
        kwargs["down_block_types"] = tuple(cfg.down_block_types)
    if cfg.up_block_types is not None:
        kwargs["up_block_types"] = tuple(cfg.up_block_types)
    return UNet2DModel(**kwargs)


def build_scheduler(cfg: ModelConfig | None = None):
    """``DDPMScheduler(1000, 1e-4, 0.02)`` (the chapter's, linear betas, x0 clipped to [-1, 1])."""
    from diffusers import DDPMScheduler

    cfg = cfg or ModelConfig()
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start, beta_end=cfg.beta_end
    )


def alphas_cumprod(cfg: ModelConfig) -> torch.Tensor:
    """The schedule's cumulative products of (1 - beta), float32, exactly as diffusers computes them."""
    betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps, dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0)


class CompiledModes:
    """One UNet's ``torch.compile`` forms, one per mode (``core.fast.compiled``), made on first use and kept
    while their model lives: compiling takes a minute, so a second sampling run in a mode reuses it."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self._unet = unet
        self._by_mode: dict[str, torch.nn.Module] = {}

    def get(self, mode: str) -> torch.nn.Module:
        """The UNet compiled in ``mode`` (a ``core.inputs.COMPILE_MODES`` entry)."""
        if mode not in self._by_mode:
            self._by_mode[mode] = fast.compiled(self._unet, mode)
        return self._by_mode[mode]

    def __len__(self) -> int:
        return len(self._by_mode)


@dataclass
class FashionDDPM:
    """A class-conditional UNet with its configuration, ready to sample from."""

    unet: torch.nn.Module
    config: ModelConfig
    source: str = ""
    #: the UNet's compiled forms (``generate_from_class(..., compile=mode)``)
    compiled: CompiledModes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.compiled = CompiledModes(self.unet)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype


def load_weights(
    path: str | Path, device: str | torch.device | None = None, dtype: torch.dtype | None = None
) -> FashionDDPM:
    """Load a weights file or a training checkpoint (safetensors only) into a ``FashionDDPM``.

    From a checkpoint of a run with ``ema_decay`` the averaged weights load (what DDPM samples from).

    ``dtype`` defaults to float16 on CUDA (fast sampling; the shipped weights are fp16) and float32 on CPU.
    """
    from safetensors import SafetensorError, safe_open

    path = expand(path, "the weights file")
    if path.is_dir():  # a training run's --out folder: its newest checkpoint
        path = newest_checkpoint(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a .safetensors file from 'fashion train'")
    dev = pick_device(device)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            keys = list(fh.keys())
            # a training checkpoint: its weights' moving average when it kept one, else the weights
            prefix = next((p for p in ("ema.", "model.") if any(k.startswith(p) for k in keys)), "")
            state = {k[len(prefix):]: fh.get_tensor(k) for k in keys if k.startswith(prefix)}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable safetensors file ({exc}); pass a model file") from None
    if CONFIG_KEY not in meta:
        raise UserError(f"{path} has no Fashion-MNIST model config; pass a file written by sd-explorer")
    cfg = ModelConfig.from_json(meta[CONFIG_KEY], f"{path.name}'s {CONFIG_KEY}")
    try:
        unet = build_unet(cfg)
        missing, unexpected = unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    except (TypeError, ValueError, RuntimeError, AttributeError, ZeroDivisionError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{path} does not fit its config ({first}); pass a file written by sd-explorer") from None
    if missing or unexpected:
        raise UserError(f"{path} does not match its config ({len(missing)} missing, {len(unexpected)} extra)")

    bad = next((k for k, v in state.items() if v.dtype == torch.bool or not is_finite(v)), None)
    if bad is not None:
        raise UserError(f"{path}: weight {bad} holds NaN, inf or true/false values, not numbers: the file is "
                        "damaged; use an earlier checkpoint or retrain.")
    if dtype is None:
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
    # nn.Module.to, not ModelMixin.to: the latter warns about fp32-only modules, which this UNet has none of
    unet = torch.nn.Module.to(unet, device=dev, dtype=dtype).eval().requires_grad_(False)
    return FashionDDPM(unet, cfg, str(path))


def load_shipped(device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> FashionDDPM:
    """The class-conditional DDPM trained on Fashion-MNIST and shipped in ``assets/fashion``."""
    if not SHIPPED_WEIGHTS.is_file():
        raise UserError(f"{SHIPPED_WEIGHTS} is missing; reinstall sd-explorer or pass --checkpoint")
    return load_weights(SHIPPED_WEIGHTS, device=device, dtype=dtype)


def write_weights(unet: torch.nn.Module, cfg: ModelConfig, path: str | Path, dtype=torch.float16) -> None:
    """Write the UNet's weights (fp16 by default) with its config to ``path`` (a ``core.atomic`` writer)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in unet.state_dict().items()}
    save_file(state, str(path), metadata={CONFIG_KEY: cfg.to_json()})


def save_weights(unet: torch.nn.Module, cfg: ModelConfig, path: str | Path, dtype=torch.float16) -> Path:
    """``write_weights`` atomically onto ``path`` (replacing it: the shipped assets' fixed names)."""
    return atomic.write_replacing(path, lambda tmp: write_weights(unet, cfg, tmp, dtype))
