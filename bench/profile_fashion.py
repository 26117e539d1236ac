"""Where the Fashion-MNIST step's time goes on a GPU (issue 24: profile before choosing fixes).

For the chapter's UNet2DModel (15.9M parameters, 32x32, 10 classes):
  * training, batch 256, bf16 autocast + AdamW (as ``core.fashion.trainer``): wall time per step eager, the sum
    of its kernels' GPU time (the floor a CUDA graph can reach without fusing), and the top kernels by GPU time
    grouped into families (convolution, GroupNorm, attention, elementwise, optimizer, ...);
  * sampling, batch 8 and 80, fp16 forward: the same split per UNet call.

    python3 bench/profile_fashion.py --json OUT/profile_fashion.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

FAMILIES = (("conv", ("conv", "implicit_gemm", "cudnn", "sm90_xmma", "dgrad", "wgrad", "fprop")),
            ("groupnorm", ("group_norm", "groupnorm", "GroupNorm")),
            ("attention", ("flash", "fmha", "attention", "softmax", "efficient")),
            ("gemm", ("gemm", "cutlass", "Kernel2", "nvjet")),
            ("optimizer", ("multi_tensor", "adam", "foreach")),
            ("reduce", ("reduce",)),
            ("elementwise", ("elementwise", "vectorized", "unrolled", "CatArray", "copy")))


def family(name: str) -> str:
    low = name.lower()
    for fam, keys in FAMILIES:
        if any(k.lower() in low for k in keys):
            return fam
    return "other"


def profile(fn, steps: int = 10) -> dict:
    from torch.profiler import ProfilerActivity, profile as prof

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - t0) / steps * 1000
    with prof(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
    kernels: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for e in p.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            k = kernels[e.name]
            k[0] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
            k[1] += 1
    total_us = sum(v[0] for v in kernels.values())
    fams: dict[str, float] = defaultdict(float)
    for name, (us, _) in kernels.items():
        fams[family(name)] += us
    top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:15]
    return {"wall_ms_per_step": wall_ms, "kernel_ms_per_step": total_us / steps / 1000,
            "kernels_per_step": sum(v[1] for v in kernels.values()) / steps,
            "families_ms_per_step": {k: v / steps / 1000 for k, v in sorted(fams.items(), key=lambda kv: -kv[1])},
            "top": [{"name": n[:90], "ms_per_step": us / steps / 1000, "calls_per_step": c / steps} for n, (us, c) in top]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    from sd_explorer.core.fashion.model import ModelConfig, build_unet

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    r: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    save = lambda: out.write_text(json.dumps(r, indent=1))  # noqa: E731
    dev = torch.device("cuda")
    unet = build_unet(ModelConfig()).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(unet.parameters(), lr=3e-4, eps=1e-5, fused=True)
    x = torch.randn(256, 1, 32, 32, device=dev).to(memory_format=torch.channels_last)
    t = torch.randint(0, 1000, (256,), device=dev)
    y = torch.randint(0, 10, (256,), device=dev)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = unet(x, t, class_labels=y, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(pred.float(), x)
        loss.backward()
        opt.step()

    r["train_b256_bf16"] = profile(train_step)
    print("train", {k: v for k, v in r["train_b256_bf16"].items() if k != "top"}, flush=True)
    save()
    half = build_unet(ModelConfig()).to(dev, torch.float16).eval().requires_grad_(False).to(memory_format=torch.channels_last)
    for b in (8, 80):
        xs = torch.randn(b, 1, 32, 32, device=dev, dtype=torch.float16)
        ys = torch.randint(0, 10, (b,), device=dev)
        ts = torch.tensor(500, device=dev)
        with torch.no_grad():
            r[f"sample_b{b}_fp16"] = profile(lambda: half(xs, ts, class_labels=ys, return_dict=False)[0], steps=50)
        print(f"sample b{b}", {k: v for k, v in r[f"sample_b{b}_fp16"].items() if k != "top"}, flush=True)
        save()
    # the training step without GroupNorm's cost: what fusing it could win at most
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
