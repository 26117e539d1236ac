"""Training checkpoints: one safetensors file with weights, optimizer state and RNG state.

Layout of a checkpoint file:
- ``model.<name>``: the UNet's weights (float32);
- ``optim.<param index>.<key>``: AdamW state tensors (``step``, ``exp_avg``, ``exp_avg_sq``);
- ``rng.<name>``: random generator states (uint8 tensors);
- metadata: ``fashion_model_config`` (JSON), ``fashion_state`` (JSON: step, epoch, config, ...),
  ``optim_param_groups`` (JSON).
Files are written to a temporary name in the same folder and renamed (atomic), and never replace an
existing file: ``ckpt-<step>.safetensors``, then ``ckpt-<step>-1.safetensors``, ...
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import torch

from core.errors import UserError

STATE_KEY = "fashion_state"
CONFIG_KEY = "fashion_model_config"  #: the model's ModelConfig (JSON) in a weights file's metadata
GROUPS_KEY = "optim_param_groups"


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fresh_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem+suffix``, or ``stem-1``, ``stem-2``... if that name is taken."""
    candidate = folder / f"{stem}{suffix}"
    n = 0
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


def save_checkpoint(
    out_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: dict,
    model_config_json: str = "",
    rng: dict[str, torch.Tensor] | None = None,
    ema: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``ckpt-<step>.safetensors`` in ``out_dir`` atomically and return its path."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {
        f"model.{k}": v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
    }
    groups: list = []
    if optimizer is not None:
        sd = optimizer.state_dict()
        for idx, pstate in sd["state"].items():
            for key, value in pstate.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
        groups = sd["param_groups"]
    for name, value in (rng or {}).items():
        tensors[f"rng.{name}"] = value.detach().cpu().contiguous()
    for name, value in (ema or {}).items():  # the weights' moving average (core.ema)
        tensors[f"ema.{name}"] = value.detach().to("cpu", torch.float32).contiguous()
    meta = {STATE_KEY: json.dumps(state), GROUPS_KEY: json.dumps(groups)}
    if model_config_json:
        meta[CONFIG_KEY] = model_config_json
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = fresh_path(folder, f"ckpt-{int(state.get('step', 0)):06d}", ".safetensors")
    with atomic_target(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict:
    """Read a checkpoint; restore weights/optimizer into the objects given; return its state dict.

    The returned dict has the saved training state plus ``"rng"``: ``{name: uint8 tensor}`` and ``"ema"``:
    the weights' moving average (empty when the run kept none).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"Checkpoint {path} does not exist; pass a ckpt-*.safetensors from a training run")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable checkpoint ({exc}); pass another one") from None
    if STATE_KEY not in meta:
        raise UserError(f"{path} is a weights file, not a training checkpoint; resume from a ckpt-*.safetensors")
    state = json.loads(meta[STATE_KEY])
    if model is not None:
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise UserError(f"{path} does not fit this model ({first}); use the same model config") from None
    if optimizer is not None:
        opt_state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = value
        groups = json.loads(meta[GROUPS_KEY])
        for group in groups:  # JSON turned tuples into lists
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
        optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
        _match_param_layout(optimizer)
    state["rng"] = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    state["ema"] = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    state["model_config_json"] = meta.get(CONFIG_KEY, "")
    return state


def _match_param_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give per-parameter state the parameter's memory layout (e.g. channels_last).

    Checkpoints store contiguous tensors; fused AdamW requires ``exp_avg`` & co. to have exactly the
    parameter's strides, so a channels_last model could not resume without this.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
