"""GPU diagnostics for the two engine failures (issue 17): where CPU and GPU images part for one seed,
and what stays allocated after an out-of-memory mid-sweep. Prints JSON lines; run on the GPU machine.

    python3 bench/gpu_diag.py OUT.json
"""
from __future__ import annotations

import gc
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from sd_explorer.core.models import load_model  # noqa: E402
from sd_explorer.core.settings import SampleSettings  # noqa: E402
from sd_explorer.core.sampler import generate, sweep  # noqa: E402
from tests.sd_factory import save_pipeline  # noqa: E402

out: dict = {}
dest = Path(sys.argv[1])


def dump(key, value):
    out[key] = value
    print(key, json.dumps(value)[:1500], flush=True)
    dest.write_text(json.dumps(out, indent=1))


def trajectory(model, settings):
    steps = []
    res = generate(model, settings, callback=lambda s: steps.append(s.latents.detach().float().cpu().clone()))
    return steps, res.latents.float().cpu()


folder = save_pipeline(Path(tempfile.mkdtemp()) / "sd1", "sd1")
cpu = load_model(str(folder), device="cpu")
gpu = load_model(str(folder), device="cuda", dtype="fp32", fast=False)
dump("flags", {"cudnn_tf32": torch.backends.cudnn.allow_tf32, "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
               "matmul_precision": torch.get_float32_matmul_precision()})

# 1. one UNet call, same inputs
g = torch.Generator().manual_seed(0)
w, h = cpu.default_size
x = torch.randn(2, cpu.unet.config.in_channels, h // 8, w // 8, generator=g)
enc = torch.randn(2, 77, cpu.unet.config.cross_attention_dim, generator=g)
with torch.no_grad():
    a = cpu.unet(x, 500, encoder_hidden_states=enc).sample
    b = gpu.unet(x.cuda(), 500, encoder_hidden_states=enc.cuda()).sample.cpu()
dump("unet_call", {"max_abs_diff": float((a - b).abs().max()), "max_abs": float(a.abs().max())})

# 2. whole runs, per step, for a deterministic and a stochastic scheduler
for sched in ("Euler", "Euler ancestral", "DDIM"):
    s = SampleSettings("a red fox", steps=6, guidance_scale=5.0, seed=123, scheduler=sched)
    try:
        cs, cf = trajectory(cpu, s)
        gs, gf = trajectory(gpu, s)
        dump(f"run {sched}", {"per_step_max_abs_diff": [float((p - q).abs().max()) for p, q in zip(cs, gs)],
                              "per_step_max_abs": [float(p.abs().max()) for p in cs],
                              "final_max_abs_diff": float((cf - gf).abs().max())})
    except Exception as exc:  # keep going
        dump(f"run {sched}", {"error": f"{type(exc).__name__}: {exc}"[:400]})

# 3. the same ancestral run with the GPU made as exact as it can be
s = SampleSettings("a red fox", steps=6, guidance_scale=5.0, seed=123, scheduler="Euler ancestral")
cs, cf = trajectory(cpu, s)
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

torch.backends.cudnn.deterministic = True
with sdpa_kernel(SDPBackend.MATH):
    gs, gf = trajectory(gpu, s)
torch.backends.cudnn.deterministic = False
dump("ancestral exact-gpu", {"per_step_max_abs_diff": [float((p - q).abs().max()) for p, q in zip(cs, gs)]})

# 4. out of memory mid-sweep: what stays allocated
from sd_explorer.core.jobs import JobRunner  # noqa: E402

del gpu
gc.collect()
torch.cuda.empty_cache()
model = load_model(str(folder), device="cuda", fast=False)
torch.cuda.synchronize()


def cuda_tensors():
    return {id(o): (tuple(o.shape), str(o.dtype), o.numel() * o.element_size())
            for o in gc.get_objects() if torch.is_tensor(o) and o.is_cuda}


before_t = cuda_tensors()
base = torch.cuda.memory_allocated()
events = []
runner = JobRunner(events.append)
total = torch.cuda.get_device_properties(0).total_memory
torch.cuda.set_per_process_memory_fraction(min(1.0, (base + (256 << 20)) / total))
big = SampleSettings("a red fox", steps=2, width=4096, height=4096)
runner.submit("sweep", lambda job: sweep(model, big, [1, 2, 4, 8, 12, 16], cancel=job.cancel))
runner.wait_idle(300)
torch.cuda.synchronize()
after_oom = torch.cuda.memory_allocated()
new = {k: v for k, v in cuda_tensors().items() if k not in before_t}
runner.submit("sweep", lambda job: sweep(model, SampleSettings("a red fox", steps=2), [1, 4]))
runner.wait_idle(120)
torch.cuda.synchronize()
after_next = torch.cuda.memory_allocated()
gc.collect()
after_gc = torch.cuda.memory_allocated()
try:
    torch._C._cuda_clearCublasWorkspaces()
except Exception as exc:  # noqa: BLE001
    print("clear workspaces:", exc)
after_ws = torch.cuda.memory_allocated()
runner.shutdown()
torch.cuda.set_per_process_memory_fraction(1.0)
dump("oom", {"events": [(e.event, e.error_kind) for e in events], "base_mb": base / 2**20,
             "after_oom_mb": after_oom / 2**20, "after_next_job_mb": after_next / 2**20,
             "after_gc_mb": after_gc / 2**20, "after_clearing_cublas_workspaces_mb": after_ws / 2**20,
             "new_tensors": sorted(new.values(), key=lambda v: -v[2])[:10]})
