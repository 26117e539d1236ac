"""CUDA-only checks of the engine (run on the GPU machine): seeds agree across devices, and a real
out-of-memory in the middle of a sweep becomes a message, frees its memory, and the next job runs."""

from __future__ import annotations

import pytest
import torch

from core.settings import SampleSettings
from core.sampler import generate, sweep

pytestmark = pytest.mark.gpu  # skipped without CUDA by conftest's hook


def test_same_seed_same_image_on_cpu_and_gpu(sd1_folder):
    from core.models import load_model

    settings = SampleSettings("a red fox", steps=6, guidance_scale=5.0, seed=123, scheduler="Euler ancestral")
    cpu = generate(load_model(str(sd1_folder), device="cpu"), settings)
    gpu = generate(load_model(str(sd1_folder), device="cuda", dtype="fp32", fast=False), settings)
    torch.testing.assert_close(gpu.latents.cpu(), cpu.latents, atol=2e-3, rtol=2e-3)


def test_fp16_and_bf16_run(sd1_folder):
    from core.models import load_model

    for dtype in ("fp16", "bf16"):
        model = load_model(str(sd1_folder), device="cuda", dtype=dtype)
        result = sweep(model, SampleSettings("a red fox", steps=4, seed=1), [1, 4])
        assert torch.isfinite(result.latents).all() and len(result.images) == 2


def test_out_of_memory_mid_sweep_is_a_message_and_the_next_job_runs(sd1_folder):
    from core.jobs import JobRunner
    from core.models import load_model

    model = load_model(str(sd1_folder), device="cuda", fast=False)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (base + (256 << 20)) / total))  # ~256 MiB of headroom
    events = []
    runner = JobRunner(events.append)
    try:
        big = SampleSettings("a red fox", steps=2, width=4096, height=4096)  # 11 rows of 512x512 latents
        runner.submit("sweep", lambda job: sweep(model, big, [1, 2, 4, 8, 12, 16], cancel=job.cancel))
        assert runner.wait_idle(300)
        failed = [e for e in events if e.event == "failed"]
        assert failed and failed[0].error_kind == "oom", [e.message for e in events]
        assert "smaller size" in failed[0].message
        torch.cuda.synchronize()
        assert torch.cuda.memory_allocated() <= base + (16 << 20)  # the failed job's tensors are gone
        events.clear()
        runner.submit("sweep", lambda job: sweep(model, SampleSettings("a red fox", steps=2), [1, 4]))
        assert runner.wait_idle(120)
        assert [e.event for e in events][-1] == "finished"
    finally:
        runner.shutdown()
        torch.cuda.set_per_process_memory_fraction(1.0)
