"""Training checkpoints: one safetensors file with weights, optimizer state and RNG state.

Layout of a checkpoint file:
- ``model.<name>``: the UNet's weights (float32);
- ``optim.<param index>.<key>``: AdamW state tensors (``step``, ``exp_avg``, ``exp_avg_sq``);
- ``rng.<name>``: random generator states (uint8 tensors);
- metadata: ``fashion_model_config`` (JSON), ``fashion_state`` (JSON: step, epoch, config, ...),
  ``optim_param_groups`` (JSON).
Files are written to a temporary name in the same folder and hard-linked to a free name (``core.atomic``,
as the PNGs are), so they never replace an existing file, not even one a second writer publishes at the
same moment: ``ckpt-<step>.safetensors``, then ``ckpt-<step>-1.safetensors``, ...
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path

import torch

from .. import atomic
from ..errors import UserError
from ..paths import expand
from ..finite import is_finite
from ..schema import parse_json

STATE_KEY = "fashion_state"
CONFIG_KEY = "fashion_model_config"  #: the model's ModelConfig (JSON) in a weights file's metadata
GROUPS_KEY = "optim_param_groups"


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
        # a scheduled learning rate is a device tensor under the whole-step graph (core.fashion.trainer): JSON a number
        groups = [{k: (v.item() if torch.is_tensor(v) else v) for k, v in g.items()} for g in sd["param_groups"]]
    for name, value in (rng or {}).items():
        tensors[f"rng.{name}"] = value.detach().cpu().contiguous()
    for name, value in (ema or {}).items():  # the weights' moving average (core.ema)
        tensors[f"ema.{name}"] = value.detach().to("cpu", torch.float32).contiguous()
    meta = {STATE_KEY: json.dumps(state), GROUPS_KEY: json.dumps(groups)}
    if model_config_json:
        meta[CONFIG_KEY] = model_config_json
    names = atomic.then_numbered(f"ckpt-{int(state.get('step', 0)):06d}", ".safetensors")
    return atomic.write_new(out_dir, names, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


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

    path = expand(path, "the checkpoint")
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
    state = read_state(meta, path)
    _check_tensors(tensors, path)
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
                _, idx, name = key.split(".", 2) if key.count(".") >= 2 else (key, "x", "")
                if not idx.isdigit() or name not in OPTIM_KEYS:
                    raise UserError(f"{path}: {key} is not AdamW state (optim.<index>.{'|'.join(OPTIM_KEYS)}); "
                                    f"{DAMAGED}")
                opt_state.setdefault(int(idx), {})[name] = value
        groups = _json(meta, GROUPS_KEY, path, list, "[]")
        for group in groups:  # JSON turned tuples into lists
            if not isinstance(group, dict):
                raise UserError(f"{path}: {GROUPS_KEY} must list objects; the checkpoint is damaged, use an earlier one")
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
        _check_optimizer(optimizer, opt_state, groups, path)
        try:
            optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise UserError(f"{path}: the optimizer state does not fit this model ({first}); use the same model config") from None
        _match_param_layout(optimizer)
    state["rng"] = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    state["ema"] = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    state["model_config_json"] = meta.get(CONFIG_KEY, "")
    return state


DAMAGED = "the checkpoint is damaged, use an earlier one"
OPTIM_KEYS = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _check_tensors(tensors: dict, path: Path) -> None:
    """Weights, EMA and optimizer state finite floats; RNG states bytes of a generator's size."""
    sizes = {len(torch.Generator().get_state()), 16}  # CPU Mersenne Twister; CUDA Philox (seed, offset)
    for key, value in tensors.items():
        if key.startswith("rng."):
            if value.dtype != torch.uint8 or value.dim() != 1 or value.numel() not in sizes:
                raise UserError(f"{path}: {key} is not a random generator's state ({value.dtype}, "
                                f"{list(value.shape)}); {DAMAGED}")
        elif key.startswith(("model.", "ema.", "optim.")):
            if value.dtype == torch.bool or not is_finite(value):
                raise UserError(f"{path}: {key} holds NaN, inf or true/false values: the run that wrote it "
                                f"diverged or the file is damaged; use an earlier checkpoint")


def _check_optimizer(optimizer: torch.optim.Optimizer, opt_state: dict, groups: list, path: Path) -> None:
    """AdamW state that fits ``optimizer``'s parameters (indices, shapes) and hyper-parameters that are finite."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for idx, pstate in opt_state.items():
        if idx >= len(params):
            raise UserError(f"{path}: optimizer state for parameter {idx}, but this model has {len(params)}; {DAMAGED}")
        for name, value in pstate.items():
            want = () if name == "step" else tuple(params[idx].shape)
            if tuple(value.shape) != want:
                raise UserError(f"{path}: optim.{idx}.{name} has shape {list(value.shape)}, its parameter "
                                f"{list(want)}; {DAMAGED}")
    for group in groups:
        for key in ("lr", "eps", "weight_decay"):
            value = group.get(key, 0.0) if isinstance(group, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                    or (key == "lr" and not 0 < value <= 1):
                raise UserError(f"{path}: the optimizer's {key} = {value!r} is not a usable value; {DAMAGED}")
        betas = group.get("betas") if isinstance(group, dict) else None
        if betas is not None and not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
            raise UserError(f"{path}: the optimizer's betas = {betas!r} must be two numbers from 0 to below 1; {DAMAGED}")


#: the training state's fields a resume reads, and their JSON types
STATE_FIELDS = {"step": int, "epoch": int, "step_in_epoch": int, "epochs": int, "batch_size": int,
                "num_images": int, "seed": int, "losses": list, "epoch_losses": list, "elapsed_s": (int, float),
                "train_config": dict}


def _json(meta: dict, key: str, path: Path, kind: type, default: str):
    try:
        value = parse_json(meta.get(key, default))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: {key} is not valid JSON ({exc}); the checkpoint is damaged, use an earlier one") from None
    if not isinstance(value, kind):
        raise UserError(f"{path}: {key} must be a JSON {kind.__name__}; the checkpoint is damaged, use an earlier one")
    return value


def read_state(meta: dict, path: Path) -> dict:
    """The checkpoint's training state (``fashion_state``), every field a resume reads checked for type and range."""
    state = _json(meta, STATE_KEY, path, dict, "{}")
    for key, kind in STATE_FIELDS.items():
        if key not in state:
            if key == "step":
                raise UserError(f"{path}: {STATE_KEY} has no step; the checkpoint is damaged, use an earlier one")
            continue
        value = state[key]
        bad = isinstance(value, bool) or not isinstance(value, kind)
        if not bad and kind is int and not 0 <= value < 2**64:
            bad = True
        if not bad and kind is list and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            bad = True
        if bad:
            raise UserError(f"{path}: {STATE_KEY}.{key} = {str(value)[:40]} is not a valid value; "
                            "the checkpoint is damaged, use an earlier one")
    state.setdefault("epoch", 0)
    state.setdefault("step_in_epoch", 0)
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


CHECKPOINT_NAME = re.compile(r"ckpt-(\d+)(?:-(\d+))?\.safetensors")  #: ``ckpt-<step>[-<n>].safetensors``


def newest_checkpoint(folder: Path) -> Path:
    """A training run's folder: its newest checkpoint (the highest step; at one step, the last one written).

    A folder without ``ckpt-*.safetensors`` is a one-line ``UserError`` naming what to pass instead."""
    found = [(int(m[1]), int(m[2] or 0), p) for p in folder.iterdir()
             if (m := CHECKPOINT_NAME.fullmatch(p.name)) and p.is_file()]
    if not found:
        raise UserError(f"{folder} has no ckpt-*.safetensors: pass a training run's --out folder, one of its "
                        "checkpoints, or a weights file")
    return max(found)[2]


def prune(paths: list[str], keep: int) -> list[str]:
    """Delete all but the newest ``keep`` of a run's checkpoints (``paths``, oldest first; 0 keeps all).

    ``paths`` is trimmed in place to those kept; returns the paths removed.
    """
    if keep <= 0 or len(paths) <= keep:
        return []
    old, paths[:] = paths[:-keep], paths[-keep:]
    for path in old:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return old
