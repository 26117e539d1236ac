"""img2img, negative-prompt sweeps and colour-loss guidance, against diffusers and single runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sd_explorer.core.batch_rows import Row
from sd_explorer.core.errors import UserError
from sd_explorer.core.loss_guidance import color_loss, parse_color
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate, sample

PROMPT = "a man in a white hat"


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("scheduler, strength", [(None, 0.6), ("DDIM", 0.5), ("Euler", 0.75)])
def test_img2img_equals_diffusers(sd1_f64, photo, scheduler, strength):
    sd1 = sd1_f64
    from diffusers import StableDiffusionImg2ImgPipeline

    from sd_explorer.core.schedulers import make_scheduler

    pipe = StableDiffusionImg2ImgPipeline(
        vae=sd1.vae, text_encoder=sd1.text_encoder, tokenizer=sd1.tokenizer, unet=sd1.unet,
        scheduler=make_scheduler(scheduler, sd1.scheduler), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    ref = pipe(PROMPT, image=photo, strength=strength, num_inference_steps=8, guidance_scale=5.0,
               output_type="latent", generator=torch.Generator("cpu").manual_seed(11)).images
    ours = generate(sd1, SampleSettings(PROMPT, steps=8, guidance_scale=5.0, seed=11, scheduler=scheduler,
                                        init_image=photo, strength=strength))
    torch.testing.assert_close(ours.latents, ref, atol=1e-6, rtol=1e-6)
    assert "Denoising strength" in ours.parameters(0)


def test_img2img_low_strength_stays_close_to_the_image(sd1, photo):
    near = generate(sd1, SampleSettings(PROMPT, steps=10, seed=1, init_image=photo, strength=0.1))
    far = generate(sd1, SampleSettings(PROMPT, steps=10, seed=1, init_image=photo, strength=1.0))
    src = np.asarray(photo, dtype=float)
    assert np.abs(np.asarray(near.images[0], dtype=float) - src).mean() < np.abs(np.asarray(far.images[0], dtype=float) - src).mean()


@pytest.mark.parametrize("strength", [0, -0.5, 1.5, float("nan")])
def test_bad_strength(sd1, photo, strength):
    with pytest.raises(UserError, match="strength"):
        generate(sd1, SampleSettings(PROMPT, steps=5, init_image=photo, strength=strength))


def test_negative_prompt_axis_cells_equal_single_runs(sd1_f64):
    sd1 = sd1_f64
    """Exercise 7: the negative prompt as the sweep axis ("white hat" removed from the unconditional side)."""
    negatives = ["", "white hat", "hat"]
    rows = [Row(7.5, neg) for neg in negatives]
    grid = sample(sd1, SampleSettings(PROMPT, steps=4, seed=3, scheduler="DDIM"), rows)
    assert grid.captions == ["7.5 · no negative", "7.5 · neg 'white hat'", "7.5 · neg 'hat'"]
    for i, neg in enumerate(negatives):
        single = generate(sd1, SampleSettings(PROMPT, negative_prompt=neg, steps=4, seed=3, scheduler="DDIM"))
        torch.testing.assert_close(grid.latents[i : i + 1], single.latents, atol=1e-7, rtol=1e-7)
        assert (f"Negative prompt: {neg}" in grid.parameters(i)) == bool(neg)
    assert not torch.allclose(grid.latents[0], grid.latents[1], atol=1e-3)


def test_colour_guidance_pulls_the_image_towards_the_colour():
    """On the shipped tiny model (its VAE only knows grey garments, so the target is white)."""
    from sd_explorer.core.models import load_model

    tiny = load_model("tiny", device="cpu")
    white = parse_color("#ffffff")
    plain = generate(tiny, SampleSettings("a photo of a sneaker", steps=10, seed=2, scheduler="DDIM"))
    steered = generate(tiny, SampleSettings("a photo of a sneaker", steps=10, seed=2, scheduler="DDIM",
                                            color_target=white, color_scale=100.0))

    def loss(result):
        x = torch.from_numpy(np.asarray(result.images[0], dtype=np.float32) / 255).permute(2, 0, 1)[None]
        return float(color_loss(x, white))

    assert loss(steered) < loss(plain) - 0.02
    assert "Colour guidance: 255,255,255 x 100" in steered.parameters(0)


def test_colour_guidance_off_is_identical(sd1):
    a = generate(sd1, SampleSettings(PROMPT, steps=3, seed=2))
    b = generate(sd1, SampleSettings(PROMPT, steps=3, seed=2, color_target=(0, 0, 1), color_scale=0.0))
    assert torch.equal(a.latents, b.latents)


def test_parse_color():
    assert parse_color("#ff0000") == (1.0, 0.0, 0.0)
    assert parse_color("0,128,255") == pytest.approx((0, 128 / 255, 1))
    for bad in ("blue", "1,2", "300,0,0", "#12"):
        with pytest.raises(UserError, match="colour"):
            parse_color(bad)
