"""The chapter's class-conditional UNet, its noise schedule, and loading trained weights.

Weights files are safetensors with the model configuration as JSON in the file's metadata
(key ``fashion_model_config``), so a file is self-describing; training checkpoints store the
weights under the prefix ``model.``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from core.devices import pick_device
from core.errors import UserError
from core.fashion.checkpoint import CONFIG_KEY, atomic_target

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "fashion"
SHIPPED_WEIGHTS = ASSETS / "ddpm.safetensors"


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

    def to_json(self) -> str:
        """The configuration as a JSON string (stored in safetensors metadata)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        """Inverse of :meth:`to_json`; tuples come back as tuples."""
        raw = json.loads(text)
        for key in ("block_out_channels", "down_block_types", "up_block_types"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})


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


@dataclass
class FashionDDPM:
    """A class-conditional UNet with its configuration, ready to sample from."""

    unet: torch.nn.Module
    config: ModelConfig
    source: str = ""

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

    path = Path(path).expanduser()
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
    cfg = ModelConfig.from_json(meta[CONFIG_KEY])
    unet = build_unet(cfg)
    missing, unexpected = unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise UserError(f"{path} does not match its config ({len(missing)} missing, {len(unexpected)} extra)")
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


def save_weights(unet: torch.nn.Module, cfg: ModelConfig, path: str | Path, dtype=torch.float16) -> Path:
    """Write the UNet's weights (fp16 by default) with its config, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in unet.state_dict().items()}
    with atomic_target(path) as tmp:
        save_file(state, str(tmp), metadata={CONFIG_KEY: cfg.to_json()})
    return path
