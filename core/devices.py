"""Where the models run and in what precision.

CUDA runs fp16 by default (bf16 on request), Apple MPS fp16, CPU fp32: half precision on the CPU
is slow or fails outright in several kernels, so it is refused with the fix.
"""

from __future__ import annotations

import torch

from .errors import UserError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(name: str | None = None) -> torch.device:
    """``name`` (cuda, cuda:1, mps, cpu) or the best available one."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {name!r}: use cuda, cuda:N, mps or cpu.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available here; use --device cpu.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"--device {name}: Apple MPS is not available here; use --device cpu.")
    return device


def pick_dtype(device: torch.device, name: str | None = None) -> torch.dtype:
    """``name`` (fp32, fp16, bf16) or the device's default (fp16 on GPUs, fp32 on CPU)."""
    if name in (None, "", "auto"):
        return torch.float32 if device.type == "cpu" else torch.float16
    if name not in DTYPES:
        raise UserError(f"unknown dtype {name!r}: use fp32, fp16 or bf16.")
    if device.type == "cpu" and name != "fp32":
        raise UserError(f"{name} on the CPU fails or crawls: use --dtype fp32 (the CPU default).")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype))
