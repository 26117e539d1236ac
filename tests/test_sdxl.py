"""SDXL in the engine's own loop: two text encoders, pooled embeddings, time ids, micro-conditioning."""

from __future__ import annotations

import pytest
import torch

from sd_explorer.core.batch_rows import Row
from sd_explorer.core.model_folder import resolve_tokenizers
from sd_explorer.core.models import load_model
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate, sample

PROMPT = "An oil painting of a collie in a top hat"


def test_loads_as_sdxl_with_both_tokenizers(sdxl_folder):
    model = load_model(str(sdxl_folder), device="cpu")
    assert model.family == "sdxl" and model.text_encoder_2 is not None and model.force_zeros_for_empty_prompt
    assert model.preview_bias is not None and model.preview_factors[0].tolist() == pytest.approx([0.3651, 0.4232, 0.4341])
    labels = [label for label, _ in resolve_tokenizers(str(sdxl_folder))]
    assert labels == ["CLIP ViT-L", "OpenCLIP bigG"]


@pytest.mark.parametrize("negative, guidance", [("", 5.0), ("blurry", 5.0), ("", 1.0)])
def test_equals_diffusers_sdxl_pipeline(sdxl, negative, guidance):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(vae=sdxl.vae, text_encoder=sdxl.text_encoder, text_encoder_2=sdxl.text_encoder_2,
                                     tokenizer=sdxl.tokenizer, tokenizer_2=sdxl.tokenizer_2, unet=sdxl.unet,
                                     scheduler=sdxl.scheduler, force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, negative_prompt=negative or None, num_inference_steps=4, guidance_scale=guidance,
               height=64, width=64, output_type="latent", generator=torch.Generator("cpu").manual_seed(5)).images
    ours = generate(sdxl, SampleSettings(PROMPT, negative_prompt=negative, steps=4, guidance_scale=guidance, seed=5))
    torch.testing.assert_close(ours.latents, ref, atol=1e-7, rtol=1e-7)


def test_micro_conditioning_sweep(sdxl):
    """The chapter's exercise: original size (256,256) vs (1024,1024), and a non-zero crop, as one batch."""
    rows = [Row(5.0, original_size=(1024, 1024)), Row(5.0, original_size=(256, 256)),
            Row(5.0, original_size=(1024, 1024), crop_top_left=(256, 0))]
    grid = sample(sdxl, SampleSettings(PROMPT, steps=3, seed=1), rows)
    assert grid.captions == ["5 · orig 1024x1024 · crop 0,0", "5 · orig 256x256 · crop 0,0", "5 · orig 1024x1024 · crop 256,0"]
    assert not torch.allclose(grid.latents[0], grid.latents[1])
    assert not torch.allclose(grid.latents[0], grid.latents[2])
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(vae=sdxl.vae, text_encoder=sdxl.text_encoder, text_encoder_2=sdxl.text_encoder_2,
                                     tokenizer=sdxl.tokenizer, tokenizer_2=sdxl.tokenizer_2, unet=sdxl.unet,
                                     scheduler=sdxl.scheduler, force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, num_inference_steps=3, guidance_scale=5.0, height=64, width=64, original_size=(256, 256),
               output_type="latent", generator=torch.Generator("cpu").manual_seed(1)).images
    torch.testing.assert_close(grid.latents[1:2], ref, atol=1e-7, rtol=1e-7)
