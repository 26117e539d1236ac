"""CUDA-only checks of the engine (run on the GPU machine): seeds agree across devices, and a real
out-of-memory in the middle of a sweep becomes a message, frees its memory, and the next job runs."""

from __future__ import annotations

import pytest
import torch

from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate, sweep

pytestmark = pytest.mark.gpu  # skipped without CUDA by conftest's hook


def test_same_seed_same_image_on_cpu_and_gpu(sd1_folder):
    from sd_explorer.core.models import load_model

    """The README's promise: a seed gives the same image on the CPU and the GPU (fp32, CPU generator).

    Measured on an H200 (bench/gpu_diag.py): cuDNN's default TF32 convolutions put one UNet call 1e-3
    (relative) off the CPU's, which a stochastic sampler carries into the image; the engine now samples
    fp32 models in IEEE fp32. What is left is summation order (GPU vs CPU kernels): 2e-5 of the latents'
    scale per run for Euler/DDIM, and Euler ancestral's long first step (sigma_down << sigma) multiplies
    it by ~10 (5.3e-3 at a latent scale of 20.5, i.e. 2.6e-4)."""
    import numpy as np

    settings = SampleSettings("a red fox", steps=6, guidance_scale=5.0, seed=123, scheduler="Euler ancestral")
    cpu = generate(load_model(str(sd1_folder), device="cpu"), settings)
    gpu = generate(load_model(str(sd1_folder), device="cuda", dtype="fp32", fast=False), settings)
    scale = cpu.latents.abs().max().item()
    assert (gpu.latents.cpu() - cpu.latents).abs().max().item() <= 5e-4 * scale
    for a, b in zip(gpu.images, cpu.images):  # what the user compares: the PNGs
        assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1


def test_fp16_and_bf16_run(sd1_folder):
    from sd_explorer.core.models import load_model

    for dtype in ("fp16", "bf16"):
        model = load_model(str(sd1_folder), device="cuda", dtype=dtype)
        result = sweep(model, SampleSettings("a red fox", steps=4, seed=1), [1, 4])
        assert torch.isfinite(result.latents).all() and len(result.images) == 2


def test_out_of_memory_mid_sweep_is_a_message_and_the_next_job_runs(sd1_folder):
    from sd_explorer.core.jobs import JobRunner
    from sd_explorer.core.models import load_model

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


def test_a_failed_capture_leaves_random_numbers_and_the_next_load_working(sd1_folder):
    """A capture invalidated part-way (here a host sync) used to leave the CUDA generator marked as
    capturing: the next model's weight init raised "Offset increment outside graph capture"."""
    from sd_explorer.core.graph_cache import GraphedCallable
    from sd_explorer.core.models import load_model

    def syncs(x):
        y = torch.nn.functional.dropout(x, 0.5)  # draws from the default CUDA generator
        return y * float(y.sum().item())  # .item() is forbidden while capturing

    graphed = GraphedCallable(syncs, "probe")
    x = torch.ones(64, device="cuda")
    graphed(x)  # capture fails, the call runs eagerly
    assert graphed.eager, "the capture was expected to fail"
    torch.nn.Linear(16, 16, device="cuda")  # kaiming_uniform_ on the GPU's generator
    torch.randn(8, device="cuda")
    model = load_model(str(sd1_folder), device="cuda", dtype="fp16")
    assert len(sweep(model, SampleSettings("a red fox", steps=2, seed=1), [1, 4]).images) == 2


def test_load_a_sweep_load_b_sweep(sd1_folder, sd2v_folder):
    """The user story behind the RNG failure: another --model (or a refiner) after a sweep."""
    from sd_explorer.core.models import load_model

    a = load_model(str(sd1_folder), device="cuda", dtype="fp16")
    first = sweep(a, SampleSettings("a red fox", steps=3, seed=2), [1, 4])
    b = load_model(str(sd2v_folder), device="cuda", dtype="fp16")
    assert len(sweep(b, SampleSettings("a red fox", steps=3, seed=2), [1, 4]).images) == 2
    again = sweep(a, SampleSettings("a red fox", steps=3, seed=2), [1, 4])
    torch.testing.assert_close(again.latents, first.latents)
