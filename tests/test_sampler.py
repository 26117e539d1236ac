"""The engine's loop against diffusers' pipeline, and the batched sweep against single runs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sd_explorer.core.errors import Cancelled, UserError
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate, sample, sweep, x0_estimate
from sd_explorer.core.schedulers import SCHEDULERS, make_scheduler

PROMPT = "An oil painting of a collie in a top hat"


def diffusers_pipe(model):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer, unet=model.unet,
        scheduler=model.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


@pytest.mark.parametrize("scheduler", [None, "DDIM", "Euler", "DPM++ 2M"])
@pytest.mark.parametrize("guidance", [7.5, 1.0])
def test_engine_equals_diffusers_pipeline(sd1, scheduler, guidance):
    pipe = diffusers_pipe(sd1)
    if scheduler:
        pipe.scheduler = make_scheduler(scheduler, sd1.scheduler)
    ref = pipe(PROMPT, num_inference_steps=6, guidance_scale=guidance, output_type="np",
               generator=torch.Generator("cpu").manual_seed(42)).images[0]
    ours = generate(sd1, SampleSettings(PROMPT, steps=6, guidance_scale=guidance, seed=42, scheduler=scheduler))
    np.testing.assert_allclose(np.asarray(ours.images[0]) / 255.0, ref, atol=2 / 255)


def test_v_prediction_equals_diffusers(sd2v_folder):
    from sd_explorer.core.models import load_model

    model = load_model(str(sd2v_folder), device="cpu")
    assert model.prediction_type == "v_prediction" and model.family == "sd2"
    ref = diffusers_pipe(model)(PROMPT, num_inference_steps=5, guidance_scale=4.0, output_type="latent",
                                generator=torch.Generator("cpu").manual_seed(3)).images
    ours = generate(model, SampleSettings(PROMPT, steps=5, guidance_scale=4.0, seed=3))
    torch.testing.assert_close(ours.latents, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_sweep_cells_equal_single_runs(sd1_f64, scheduler):
    scales = [1.0, 2.0, 12.0]
    settings = SampleSettings(PROMPT, steps=4, seed=7, scheduler=scheduler)
    grid = sweep(sd1_f64, settings, scales)
    assert grid.captions == ["1 · no CFG", "2", "12"]
    for i, scale in enumerate(scales):
        single = generate(sd1_f64, SampleSettings(PROMPT, steps=4, seed=7, scheduler=scheduler, guidance_scale=scale))
        torch.testing.assert_close(grid.latents[i : i + 1], single.latents, atol=1e-9, rtol=1e-9)
    # and the scales really do change the picture
    assert not torch.allclose(grid.latents[0], grid.latents[2], atol=1e-3)


def _count_unet_rows(model):
    rows: list[int] = []
    handle = model.unet.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    return rows, handle


def test_one_unet_call_per_step_and_no_uncond_pass_without_cfg(sd1):
    rows, handle = _count_unet_rows(sd1)
    try:
        generate(sd1, SampleSettings(PROMPT, steps=3, guidance_scale=1.0, scheduler="DDIM"))
        assert rows == [1, 1, 1]
        rows.clear()
        generate(sd1, SampleSettings(PROMPT, steps=3, guidance_scale=7.5, scheduler="DDIM"))
        assert rows == [2, 2, 2]
        rows.clear()
        sweep(sd1, SampleSettings(PROMPT, steps=3, scheduler="DDIM"), [1, 2, 4, 12])
        assert rows == [7, 7, 7]  # 4 text rows + 3 unconditional rows (scale 1 needs none)
    finally:
        handle.remove()


def test_callback_reports_every_step_with_x0_and_preview(sd1):
    seen = []
    result = sweep(sd1, SampleSettings(PROMPT, steps=5, scheduler="DDIM"), [1, 4], callback=seen.append)
    assert [s.index for s in seen] == list(range(5)) and all(s.total == 5 for s in seen)
    last = seen[-1]
    assert last.x0.shape == result.latents.shape
    assert last.preview.shape == (2, 8, 8, 3) and last.preview.dtype == np.uint8
    torch.testing.assert_close(last.latents, result.latents)
    assert seen[0].timestep > seen[-1].timestep


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_x0_fallback_matches_scheduler_formula(sd1, prediction):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(sd1.scheduler.config, prediction_type=prediction, clip_sample=False)
    sched.set_timesteps(10)
    t = sched.timesteps[3]
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    out = sched.step(eps, t, x)

    class Bare:  # a step output without pred_original_sample, like PNDM's
        prev_sample = out.prev_sample

    torch.testing.assert_close(x0_estimate(sched, Bare(), x, x, eps, t), out.pred_original_sample, atol=1e-5, rtol=1e-5)


def test_cancel_stops_within_one_step(sd1):
    cancel, steps = threading.Event(), []

    def on_step(info):
        steps.append(info.index)
        if info.index == 1:
            cancel.set()

    with pytest.raises(Cancelled):
        sweep(sd1, SampleSettings(PROMPT, steps=20, scheduler="DDIM"), [1, 4], callback=on_step, cancel=cancel)
    assert steps == [0, 1]


def test_same_seed_same_image_and_other_seed_differs(sd1):
    a = generate(sd1, SampleSettings(PROMPT, steps=3, seed=5))
    b = generate(sd1, SampleSettings(PROMPT, steps=3, seed=5))
    c = generate(sd1, SampleSettings(PROMPT, steps=3, seed=6))
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))
    assert not np.array_equal(np.asarray(a.images[0]), np.asarray(c.images[0]))


def test_negative_prompt_replaces_the_unconditional_branch(sd1):
    a = generate(sd1, SampleSettings(PROMPT, steps=3, guidance_scale=7.5))
    b = generate(sd1, SampleSettings(PROMPT, negative_prompt="white hat", steps=3, guidance_scale=7.5))
    assert not torch.allclose(a.latents, b.latents)


def test_long_prompt_reports_dropped_tokens_when_truncating(sd1):
    text = "cat " * 72 + "zebra giraffe elephant leopard tiger"
    result = generate(sd1, SampleSettings(text, steps=1, long_prompt="truncate"))
    assert "leopard" in result.dropped_tokens and "cat" not in result.dropped_tokens
    assert generate(sd1, SampleSettings(text, steps=1)).dropped_tokens == ""  # chunked by default


def test_size_and_parameters(sd1):
    result = generate(sd1, SampleSettings(PROMPT, steps=2, width=96, height=64, seed=9), n=2)
    assert [im.size for im in result.images] == [(96, 64), (96, 64)]
    text = result.parameters(1)
    assert text.startswith(PROMPT) and "Steps: 2" in text and "Seed: 10" in text and "Size: 96x64" in text
    assert "Seed: 9," in result.parameters(0)  # image i says the seed that makes it alone: seed + i


def test_image_i_of_a_batch_is_the_one_image_run_of_seed_plus_i(sd1_f64):
    """``generate --seed 42 -n 3``: the third image is ``--seed 44 -n 1``'s, and its parameters say so (issue 27)."""
    settings = SampleSettings(PROMPT, steps=3, seed=42, scheduler="Euler a")
    batch = generate(sd1_f64, settings, n=3)
    alone = generate(sd1_f64, SampleSettings(PROMPT, steps=3, seed=44, scheduler="Euler a"))
    torch.testing.assert_close(batch.latents[2], alone.latents[0])
    assert [batch.seed(i) for i in range(3)] == [42, 43, 44] and "Seed: 44," in batch.parameters(2)
    with pytest.raises(UserError, match="passes the largest seed"):
        generate(sd1_f64, SampleSettings(PROMPT, steps=1, seed=2**64 - 2), n=3)


@pytest.mark.parametrize("settings, message", [
    (dict(steps=0), "steps"), (dict(steps=100_000), "steps"), (dict(guidance_scale=float("nan")), "guidance"),
    (dict(guidance_scale=float("inf")), "guidance"), (dict(guidance_scale=-1), "guidance"),
    (dict(width=63), "multiple of 8"), (dict(height=0), "multiple of 8"), (dict(seed=-1), "seed"),
    (dict(seed=2**70), "seed"), (dict(scheduler="warp drive"), "scheduler"),
])
def test_bad_settings_are_one_line_errors(sd1, settings, message):
    with pytest.raises(UserError, match=message) as info:
        generate(sd1, SampleSettings(PROMPT, **settings))
    assert "\n" not in str(info.value)


def test_empty_or_bad_scale_list(sd1):
    with pytest.raises(UserError, match="empty"):
        sweep(sd1, SampleSettings(PROMPT, steps=1), [])
    with pytest.raises(UserError, match="finite"):
        sweep(sd1, SampleSettings(PROMPT, steps=1), [1, float("nan")])


def test_at_most_16_cells_in_one_batch(sd1):
    with pytest.raises(UserError, match="at most 16"):
        sweep(sd1, SampleSettings(PROMPT, steps=1), [2.0] * 17)


def test_one_entry_point_rows_and_noise(sd1_f64):
    """``sample`` takes rows; each row's own generator makes row i a one-row run; ``generate``'s ``n`` images
    differ (seed + i each)."""
    from sd_explorer.core.batch_rows import Row

    settings = SampleSettings(PROMPT, steps=3, seed=4)
    same = sample(sd1_f64, settings, [Row(3.0), Row(3.0)])
    torch.testing.assert_close(same.latents[0], same.latents[1], atol=0, rtol=0)
    many = generate(sd1_f64, settings, n=2)
    assert not torch.equal(many.latents[0], many.latents[1])
    one = sample(sd1_f64, settings, [Row(settings.guidance_scale)])
    torch.testing.assert_close(generate(sd1_f64, settings).latents, one.latents, atol=0, rtol=0)
    with pytest.raises(UserError, match="at least one row"):
        sample(sd1_f64, settings, [])
    with pytest.raises(UserError, match="no model is loaded"):
        sample(None, settings, [Row(3.0)])


def test_settings_are_validated_once_per_request(sd1, monkeypatch):
    """A form validates at the key press; the sampler trusts that, unless a field changed since."""
    calls = []
    real = SampleSettings._check
    monkeypatch.setattr(SampleSettings, "_check", lambda self, multiple: calls.append(multiple) or real(self, multiple))
    settings = SampleSettings(PROMPT, steps=1).validate()
    sweep(sd1, settings, [1.0, 2.0])
    assert calls == [8]
    settings.steps = 0  # a change undoes the validation: the sampler checks again, and refuses
    with pytest.raises(UserError, match="steps"):
        sweep(sd1, settings, [1.0])
    assert calls == [8, 8]
