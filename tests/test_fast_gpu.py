"""The GPU fast paths (core.fast) give the eager path's images, and fall back cleanly off CUDA.

GPU tests compare against the eager fp16 run and use fp16's own error as the yardstick: the fast
path must be as close to an fp32 run as eager fp16 is (plus a little), so a stale graph buffer, a
missing output copy (PNDM keeps past predictions) or a wrong timestep fails loudly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sd_explorer.core.fast import FastOptions, FastUNet, disable_fast_paths, enable_fast_paths
from sd_explorer.core.graph_cache import GraphedCallable, rebuild, signature
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate, sweep

PROMPT = "An oil painting of a collie in a top hat"


# ---------------------------------------------------------------- CPU: no-op and plumbing
def test_enable_is_a_noop_on_cpu(sd1):
    before = generate(sd1, SampleSettings(PROMPT, steps=2, seed=1))
    messages: list[str] = []
    options = enable_fast_paths(sd1, status=messages.append)
    try:
        assert sd1.unet_forward is None and options.describe() == "none"
        assert messages and "CUDA" in messages[0]
        after = generate(sd1, SampleSettings(PROMPT, steps=2, seed=1))
        torch.testing.assert_close(after.latents, before.latents, atol=0, rtol=0)
    finally:
        disable_fast_paths(sd1)


def test_load_model_fast_on_cpu_loads_the_eager_unet(sd1_folder):
    from sd_explorer.core.models import load_model

    model = load_model(str(sd1_folder), device="cpu", fast=True)
    assert model.unet_forward is None


def test_fast_unet_without_graphs_is_the_eager_unet(sd1):
    """The hook's plumbing (timestep as int, CPU tensor, device tensor) on the CPU."""
    fast = FastUNet(sd1.unet, FastOptions(graphs=False))
    g = torch.Generator().manual_seed(0)
    x, cond = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g)
    want = sd1.unet(x, torch.tensor(500), encoder_hidden_states=cond).sample
    for t in (500, torch.tensor(500), torch.tensor([500])):
        torch.testing.assert_close(fast(x, t, cond), want)
    assert not torch.allclose(fast(x, 20, cond), want)


@pytest.mark.parametrize("regions", [True, False], ids=["blocks", "whole"])
def test_compiled_unet_traces_and_matches_eager_on_cpu(sd1, monkeypatch, regions):
    """torch.compile's plumbing through the hook: Dynamo traces the UNet, or only its repeated blocks
    (core.compile_regions), with the "eager" backend on the CPU (the GPU test below compiles with Inductor),
    and gives the same numbers; outside the compiled call the blocks run eagerly."""
    import sd_explorer.core.fast as fast_mod

    monkeypatch.setattr(fast_mod, "COMPILE_BACKEND", "eager")
    torch._dynamo.reset()
    fast = FastUNet(sd1.unet, FastOptions(graphs=False, compile="default", compile_regions=regions))
    try:
        assert (len(fast.regions) >= 4) if regions else (fast.regions is None and fast.compiled_module is not None)
        g = torch.Generator().manual_seed(0)
        x, cond = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g)
        want = sd1.unet(x, torch.tensor(500), encoder_hidden_states=cond).sample
        torch.testing.assert_close(fast(x, 500, cond), want)
        torch.testing.assert_close(fast(x, 501, cond), sd1.unet(x, torch.tensor(501), encoder_hidden_states=cond).sample)
        if regions:
            counts = torch._dynamo.utils.counters["stats"]["unique_graphs"]
            assert counts >= 2  # the blocks were traced: the compiled twins ran
            sd1.unet(x, torch.tensor(500), encoder_hidden_states=cond)  # the plain call: eager, nothing new traced
            assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == counts
    finally:
        if fast.regions is not None:
            fast.regions.remove()
        torch._dynamo.reset()


def test_bad_compile_mode_is_a_user_error(sd1):
    from sd_explorer.core.errors import UserError

    with pytest.raises(UserError, match="compile mode 'fast'.*default"):
        enable_fast_paths(sd1, compile="fast")
    assert sd1.unet_forward is None


def test_signature_keys_and_rebuild():
    """One graph per signature: shapes, dtypes, devices and plain values count; tensor values do not."""
    a, b = torch.zeros(2, 3), torch.ones(1, 3)

    def key(*args, **kwargs):
        return signature(args, kwargs)[0]

    _, spec, leaves = signature((a, 5), {"added": {"x": b, "y": None}, "flag": False})
    args, kwargs = rebuild(spec, leaves)
    assert args[0] is a and args[1] == 5 and kwargs["added"]["x"] is b and kwargs["flag"] is False
    assert key(a, 5) != key(torch.zeros(4, 3), 5) and key(a, 5) != key(a.half(), 5) and key(a, 5) != key(a, 6)
    assert key(a, 5) == key(torch.ones(2, 3), 5) and key(a, y=None) != key(a, y=1)
    assert key(a, flag=False) != key(flag=False, x=a)  # positional vs keyword is another call


# ---------------------------------------------------------------- GPU: equality with eager
def _tamed(model):
    """A random UNet's predictions, scaled down: random weights make CFG sampling chaotic (a 1e-6
    change grows to whole grey levels in 8 steps at scale 7.5), trained weights do not."""
    with torch.no_grad():
        model.unet.conv_out.weight.mul_(0.05)
        model.unet.conv_out.bias.mul_(0.05)
    return model


@pytest.fixture(scope="module")
def gpu16(sd1_folder):
    from sd_explorer.core.models import load_model

    return _tamed(load_model(str(sd1_folder), device="cuda", dtype="fp16", fast=False))


@pytest.fixture(scope="module")
def gpu32(sd1_folder):
    from sd_explorer.core.models import load_model

    return _tamed(load_model(str(sd1_folder), device="cuda", dtype="fp32", fast=False))


def _run(model, kind: str, scheduler=None, steps: int = 8, guidance: float = 7.5):
    settings = SampleSettings(PROMPT, steps=steps, seed=3, scheduler=scheduler, guidance_scale=guidance)
    if kind == "sweep":
        return sweep(model, settings, [1, 2, 4, 12])
    return generate(model, settings)


def _unet_calls(model, scheduler, steps: int = 8) -> int:
    from sd_explorer.core.schedulers import make_scheduler

    sched = make_scheduler(scheduler, model.scheduler)
    sched.set_timesteps(steps)
    return len(sched.timesteps)


def assert_within_fp16(fast, eager16, ref32, image_gap: float = 1.0) -> None:
    """The fast run is (about) as close to the fp32 run as the eager fp16 run is, and its images are within
    ``image_gap`` (mean, in 0-255 levels) of the eager fp16 run's."""
    scale = ref32.latents.abs().max().item()
    lat_fast = (fast.latents.float() - ref32.latents).abs().max().item()
    lat_eager = (eager16.latents.float() - ref32.latents).abs().max().item()
    assert lat_fast <= 2 * lat_eager + 0.02 * scale, (lat_fast, lat_eager, scale)
    for f, e, r in zip(fast.images, eager16.images, ref32.images):
        f, e, r = (np.asarray(im, dtype=np.int16) for im in (f, e, r))
        assert np.abs(f - r).mean() <= 2 * np.abs(e - r).mean() + 0.5
        assert np.abs(f - e).mean() <= image_gap


@pytest.mark.gpu
@pytest.mark.parametrize("kind, scheduler", [("generate", None), ("sweep", None), ("generate", "DPM++ 2M"),
                                             ("sweep", "Euler")])
def test_graphs_alone_replay_the_eager_unet_exactly(gpu16, kind, scheduler):
    """Same kernels, same inputs: the graphed trajectory is the eager one (CFG chaos cannot hide a bug)."""
    eager = _run(gpu16, kind, scheduler)
    enable_fast_paths(gpu16, graphs=True, channels_last=False, fuse_qkv=False, cudnn_benchmark=False)
    try:
        fast = _run(gpu16, kind, scheduler)
        graphed = gpu16.unet_forward.graphed
        assert len(graphed.captures) == 1 and graphed.replays == _unet_calls(gpu16, scheduler)
    finally:
        disable_fast_paths(gpu16)
    torch.testing.assert_close(fast.latents, eager.latents, atol=1e-3, rtol=1e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("kind, scheduler, guidance", [("generate", None, 7.5), ("generate", None, 1.0),
                                                       ("generate", "Euler", 7.5), ("sweep", None, 7.5),
                                                       ("sweep", "DDIM", 7.5)])
def test_default_fast_paths_equal_eager_within_fp16(gpu16, gpu32, kind, scheduler, guidance):
    eager16 = _run(gpu16, kind, scheduler, guidance=guidance)
    ref32 = _run(gpu32, kind, scheduler, guidance=guidance)
    options = enable_fast_paths(gpu16)
    try:
        assert options.graphs and isinstance(gpu16.unet_forward, FastUNet)
        fast = _run(gpu16, kind, scheduler, guidance=guidance)
        assert gpu16.unet_forward.graphed.replays == _unet_calls(gpu16, scheduler)
    finally:
        disable_fast_paths(gpu16)
    assert_within_fp16(fast, eager16, ref32)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["generate", "sweep"])
def test_compiled_and_graphed_unet_equals_eager_within_fp16(gpu16, gpu32, kind):
    """torch.compile (Inductor) under the graphs: its fused kernels round differently, within fp16."""
    eager16, ref32 = _run(gpu16, kind), _run(gpu32, kind)
    torch._dynamo.reset()
    options = enable_fast_paths(gpu16, compile="default")
    try:
        assert options.compile == "default" and "compile" in gpu16.unet_forward.graphed.name
        fast = _run(gpu16, kind)
        assert gpu16.unet_forward.graphed.replays == _unet_calls(gpu16, None)
    finally:
        disable_fast_paths(gpu16)
        torch._dynamo.reset()
    assert_within_fp16(fast, eager16, ref32)


@pytest.mark.gpu
@pytest.mark.parametrize("rows", [2, 7])
def test_default_fast_unet_call_equals_eager_call(gpu16, gpu32, rows):
    """One UNet call, same inputs: the default fast path is within a few times eager fp16's own
    error of an fp32 call (other conv/GEMM kernels round differently), call after call through one
    graph (new latents, timestep and prompt each time)."""
    g = torch.Generator("cuda").manual_seed(rows)
    calls = [(torch.randn(rows, 4, 8, 8, device="cuda", dtype=torch.float16, generator=g), torch.tensor(t, device="cuda"),
              torch.randn(rows, 77, 32, device="cuda", dtype=torch.float16, generator=g)) for t in (981, 500, 21)]
    with torch.no_grad():
        want = [gpu16.unet(x, t, encoder_hidden_states=c).sample.float() for x, t, c in calls]
        ref = [gpu32.unet(x.float(), t, encoder_hidden_states=c.float()).sample for x, t, c in calls]
        enable_fast_paths(gpu16)
        try:
            got = [gpu16.predict(x, t, c) for x, t, c in calls]
            assert len(gpu16.unet_forward.captures) == 1
        finally:
            disable_fast_paths(gpu16)
    for a, b, r in zip(got, want, ref):
        assert a.is_contiguous() and a.dtype == torch.float16
        err_fast, err_eager = (a.float() - r).abs().max().item(), (b - r).abs().max().item()
        # a stale buffer or a wrong timestep is off by the output's own size, ~25x eager's error here
        assert err_fast <= 4 * err_eager + 1e-3 * r.abs().max().item(), (err_fast, err_eager)
    assert not torch.allclose(got[0], got[1])


@pytest.mark.gpu
def test_one_capture_per_shape_with_status(gpu16):
    messages: list[str] = []
    enable_fast_paths(gpu16, status=messages.append)
    try:
        _run(gpu16, "generate", steps=3)
        _run(gpu16, "generate", steps=3)
        assert len(gpu16.unet_forward.captures) == 1
        generate(gpu16, SampleSettings(PROMPT, steps=2, seed=3), n=2)  # 4 UNet rows: a new shape
        assert len(gpu16.unet_forward.captures) == 2
    finally:
        disable_fast_paths(gpu16)
    assert any(m.startswith("capturing CUDA graph") for m in messages)
    assert sum(m.startswith("captured CUDA graph") for m in messages) == 2


@pytest.mark.gpu
def test_disable_restores_the_eager_model(gpu16):
    before = _run(gpu16, "generate", steps=3)
    enable_fast_paths(gpu16)
    _run(gpu16, "generate", steps=3)
    disable_fast_paths(gpu16)
    assert gpu16.unet_forward is None
    assert {type(p).__name__ for p in gpu16.unet.attn_processors.values()} == {"AttnProcessor2_0"}
    assert not any(hasattr(m, "to_qkv") or hasattr(m, "to_kv") for m in gpu16.unet.modules())
    assert gpu16.unet.conv_in.weight.is_contiguous() and gpu16.vae.decoder.conv_in.weight.is_contiguous()
    after = _run(gpu16, "generate", steps=3)
    torch.testing.assert_close(after.latents, before.latents, atol=1e-3, rtol=1e-3)


@pytest.mark.gpu
def test_load_model_turns_fast_paths_on_for_cuda(sd1_folder):
    from sd_explorer.core.models import load_model

    assert isinstance(load_model(str(sd1_folder), device="cuda", dtype="fp16").unet_forward, FastUNet)
    assert load_model(str(sd1_folder), device="cuda", dtype="fp16", fast=False).unet_forward is None


@pytest.mark.gpu
def test_graphed_sdxl_shaped_unet_forward_equals_eager():
    """The generic wrapper that the SDXL benchmark swaps into ``pipe.unet``: dict kwargs, return_dict."""
    from diffusers import UNet2DConditionModel

    from sd_explorer.core.fast import graph_module_forward, restore_module_forward

    torch.manual_seed(0)
    with torch.device("cuda"):
        unet = UNet2DConditionModel(
            sample_size=16, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2), attention_head_dim=(2, 4), use_linear_projection=True,
            cross_attention_dim=64, addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=32 + 6 * 8,
        ).half().eval()

    def inputs(batch: int, seed: int):
        g = torch.Generator("cuda").manual_seed(seed)
        r = lambda *s: torch.randn(*s, device="cuda", dtype=torch.float16, generator=g)  # noqa: E731
        return (r(batch, 4, 16, 16), torch.tensor(700.0 - seed, device="cuda"), r(batch, 77, 64),
                {"text_embeds": r(batch, 32), "time_ids": r(batch, 6)})

    def call(x, t, cond, added):
        return unet(x, t, encoder_hidden_states=cond, added_cond_kwargs=added, return_dict=False)[0]

    with torch.no_grad():
        want = [call(*inputs(2, s)) for s in (1, 2)] + [call(*inputs(3, 3))]
        graphed = graph_module_forward(unet)
        got = [call(*inputs(2, s)) for s in (1, 2)] + [call(*inputs(3, 3))]
    assert len(graphed.captures) == 2 and graphed.replays == 3
    for g_, w in zip(got, want):
        torch.testing.assert_close(g_, w, atol=2e-3, rtol=2e-3)
    restore_module_forward(unet)
    assert "forward" not in unet.__dict__
    fast = FastUNet(unet, FastOptions(channels_last=False, fuse_qkv=False, cudnn_benchmark=False))  # the engine hook
    got = [fast(*inputs(2, s)) for s in (1, 2)]
    assert len(fast.captures) == 1
    for g_, w in zip(got, want):
        torch.testing.assert_close(g_, w, atol=2e-3, rtol=2e-3)


@pytest.mark.gpu
def test_capture_failure_falls_back_to_eager():
    """A function that syncs with the host cannot be captured: it still runs, eagerly, and says so."""
    messages: list[str] = []
    graphed = GraphedCallable(lambda x: x * float(x.sum()), "sync", status=messages.append)
    x = torch.arange(4.0, device="cuda")
    torch.testing.assert_close(graphed(x), x * 6)
    torch.testing.assert_close(graphed(x + 1), (x + 1) * 10)
    assert not graphed.graphs and len(graphed.eager) == 1
    assert any("failed" in m for m in messages)
    torch.testing.assert_close(torch.ones(3, device="cuda") * 2, torch.full((3,), 2.0, device="cuda"))
