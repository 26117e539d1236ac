"""A training run's settings: ``TrainConfig`` (the chapter's recipe by default), checked by ``validate``,
read from JSON (``fashion train --config``, a checkpoint's ``train_config``: ``config_from_dict``) or
rebuilt from a checkpoint to resume it (``resume_config``). ``core.fashion.trainer`` runs it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UserError
from .checkpoint import load_checkpoint
from .lr_schedule import SCHEDULES
from .model import ModelConfig
from ..inputs import check_seed, check_whole
from ..schema import from_dict


@dataclass
class TrainConfig:
    """The chapter's recipe by default: 25 epochs, batch 256, AdamW(3e-4, eps 1e-5)."""

    epochs: int = 25
    batch_size: int = 256
    lr: float = 3e-4
    eps: float = 1e-5
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: str | None = None
    out_dir: str | None = None
    checkpoint_every_epochs: int = 1
    log_every: int = 10
    log_seconds: float = 0.0  # also report when this long has passed since the last report (0 = off)
    resume: str | None = None
    channels_last: bool = True
    mixed_precision: str = "auto"  # "auto" = bf16 on CUDA, none on CPU; or "no" / "bf16"
    compile: bool = False  # torch.compile the UNet (on CUDA it is then captured in the step's graph)
    init_weights: str | None = None  # start from these weights (a .safetensors file), e.g. to train on
    ema_decay: float = 0.0  # > 0: also keep a moving average of the weights (core.ema), e.g. 0.999
    cuda_graph: bool = True  # capture the whole step on single-process CUDA runs
    cudnn_benchmark: bool = True
    lr_warmup_steps: int = 0  # linear warm-up of the learning rate over this many steps (core.fashion.lr_schedule)
    lr_schedule: str = "constant"  # after the warm-up: "constant", or "cosine" (down to 0 at the run's last step)
    ema_warmup: bool = False  # the EMA's decay grows with the step, min(decay, (1 + step) / (10 + step))

    def validate(self) -> None:
        """Raise ``UserError`` for settings that cannot train (types: ``config_from_dict``)."""
        check_whole(self.epochs, "epochs", 1, 100_000, 25)
        check_whole(self.batch_size, "batch size", 1, 65_536, 256)
        check_seed(self.seed)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise UserError(f"learning rate must be a number above 0 and at most 1, not {self.lr}: e.g. 3e-4")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and 0 < self.eps < 1):
            raise UserError(f"eps must be a small positive number, not {self.eps}: e.g. 1e-5")
        self.model.validate()
        if self.log_every < 1 or self.checkpoint_every_epochs < 1:
            raise UserError("log_every and checkpoint_every_epochs must be at least 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"ema_decay must be from 0 (off) to below 1, e.g. 0.999, not {self.ema_decay}")
        if not 0 <= self.log_seconds < math.inf:
            raise UserError(f"log_seconds must be 0 or more, not {self.log_seconds}")
        check_whole(self.lr_warmup_steps, "lr_warmup_steps", 0, 10_000_000, 500)
        if self.lr_schedule not in SCHEDULES:
            raise UserError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, not {self.lr_schedule!r}")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise UserError(f"mixed precision must be auto, no or bf16, not {self.mixed_precision!r}")

    def to_dict(self) -> dict:
        """The config as JSON-ready fields (a checkpoint's ``train_config``), ``model`` as a dict too."""
        out = asdict(self)
        out["model"] = asdict(self.model)
        return out



def resume_config(path: str | Path, **overrides) -> TrainConfig:
    """The ``TrainConfig`` a checkpoint was written with, with ``resume`` set and ``overrides`` applied."""
    state = load_checkpoint(path)
    raw = dict(state.get("train_config") or {})
    model_raw = raw.pop("model", None)
    where = f"{Path(path).name}'s training config"
    model = ModelConfig.from_json(state["model_config_json"], where) if state.get("model_config_json") else (
        ModelConfig.from_dict(model_raw, where) if model_raw else ModelConfig())
    known = set(TrainConfig.__dataclass_fields__)
    cfg = config_from_dict({k: v for k, v in raw.items() if k in known and k != "model"}, where)
    cfg.model = model
    cfg.resume = str(path)
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


def config_from_dict(raw, where: str) -> TrainConfig:
    """A ``TrainConfig`` from a JSON object (``fashion train --config``, a checkpoint's ``train_config``):
    every field's type checked (``core.schema``), ``model`` as ``ModelConfig.from_dict``, then ``validate``."""
    if isinstance(raw, dict) and "model" in raw:
        raw = dict(raw)
        model = raw.pop("model")
        cfg = from_dict(TrainConfig, raw, where)
        cfg.model = ModelConfig.from_dict(model, f"{where}: model")
    else:
        cfg = from_dict(TrainConfig, raw, where)
    cfg.validate()
    return cfg
