"""The shipped tiny model (assets/tiny-sd): layout, loading every way users load it, and behaviour.

These run the real shipped weights on the CPU with few steps: the sweep must differ across scales,
prompts must steer (trousers are tall and narrow, sneakers wide and flat), and the VAE must round-trip
held-out Fashion-MNIST images at >= 28 dB.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sd_explorer.core.clip_vocab import clip_tokenizer
from sd_explorer.core.tiny import ASSET_DIR, configs

STEPS = 12


@pytest.fixture(scope="module")
def tiny():
    from sd_explorer.core.models import load_model

    return load_model("tiny", device="cpu")


def test_folder_is_a_diffusers_sd_pipeline_with_injected_tokenizer():
    index = json.loads((ASSET_DIR / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["tokenizer"] == [None, None]
    assert index["safety_checker"] == [None, None] and index["feature_extractor"] == [None, None]
    assert index["requires_safety_checker"] is False
    for name in ("text_encoder", "unet", "vae", "scheduler"):
        assert (ASSET_DIR / name).is_dir(), name
    assert not list(ASSET_DIR.rglob("*.bin")), "weights must be safetensors only"


def test_weights_are_fp16_and_within_the_size_budget():
    from safetensors import safe_open

    files = list(ASSET_DIR.rglob("*.safetensors"))
    assert len(files) == 3
    assert sum(f.stat().st_size for f in files) <= 25 * 1024 * 1024
    for f in files:
        with safe_open(str(f), "pt") as st:
            dtypes = {st.get_tensor(k).dtype for k in st.keys()}
        assert dtypes == {torch.float16}, f


def test_tokenizer_gives_the_chapters_ids():
    ids = clip_tokenizer()("A photograph of a puppy").input_ids
    assert ids == [49406, 320, 8853, 539, 320, 6829, 49407]
    assert clip_tokenizer()("a photo of a sneaker").input_ids[-2] == 24781  # sneaker</w>


def test_loads_with_diffusers_pipeline_by_path_and_makes_an_image():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(ASSET_DIR), tokenizer=clip_tokenizer(),
                                                   torch_dtype=torch.float32, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a photo of a sneaker", num_inference_steps=4, guidance_scale=4.0, output_type="np",
               generator=torch.Generator("cpu").manual_seed(0)).images
    assert out.shape == (1, 64, 64, 3)
    assert np.isfinite(out).all() and out.std() > 0.05


def test_load_model_tiny_and_by_path_are_the_same_model(tiny):
    from sd_explorer.core.models import load_model

    by_path = load_model(str(ASSET_DIR), device="cpu")
    assert tiny.default_size == (64, 64) and tiny.vae_scale_factor == configs.VAE_SCALE
    assert tiny.unet.config.in_channels == 4 and tiny.unet.config.cross_attention_dim == configs.TEXT_DIM
    for a, b in zip(tiny.unet.state_dict().values(), by_path.unet.state_dict().values()):
        assert torch.equal(a, b)
    # trained, not the random init: the VAE's scaling factor was set from the latents' std
    assert tiny.vae.config.scaling_factor != configs.DEFAULT_SCALING_FACTOR


def test_sweep_cells_differ_across_scales(tiny):
    from sd_explorer.core.settings import SampleSettings
    from sd_explorer.core.sampler import sweep

    result = sweep(tiny, SampleSettings("a photo of a sneaker", steps=STEPS, seed=0), [1, 2, 4, 12])
    cells = [np.asarray(im, dtype=np.float32) for im in result.images]
    assert all(c.shape == (64, 64, 3) for c in cells)
    for i in range(len(cells) - 1):
        assert np.abs(cells[i] - cells[i + 1]).mean() > 1.0, f"scales {result.scales[i]} and {result.scales[i + 1]}"


def _extent(image) -> tuple[int, int]:
    """Height and width (pixels) of the bright object in a 64x64 image."""
    mask = np.asarray(image.convert("L"), dtype=np.float32) > 60
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_prompt_steers_the_image(tiny, seed):
    from sd_explorer.core.settings import SampleSettings
    from sd_explorer.core.sampler import generate

    def make(prompt):
        return generate(tiny, SampleSettings(prompt, steps=STEPS, guidance_scale=4.0, seed=seed)).images[0]

    trousers_h, trousers_w = _extent(make("a photo of trousers"))
    sneaker_h, sneaker_w = _extent(make("a photo of a sneaker"))
    assert trousers_h > 1.5 * trousers_w, "trousers should be tall and narrow"
    assert sneaker_w > 1.5 * sneaker_h, "a sneaker should be wide and flat"


def test_prompt_following_with_the_project_classifier(tiny):
    from PIL import Image

    from sd_explorer.core.fashion.classifier import CLASSIFIER_WEIGHTS, classify, load_classifier
    from sd_explorer.core.settings import SampleSettings
    from sd_explorer.core.sampler import generate
    from sd_explorer.core.tiny.captions import PROMPTS

    if not CLASSIFIER_WEIGHTS.is_file():
        pytest.skip("assets/fashion/classifier.safetensors has not landed")
    model = load_classifier("cpu")
    images = [generate(tiny, SampleSettings(p, steps=STEPS, guidance_scale=4.0, seed=0)).images[0] for p in PROMPTS]
    gray = torch.tensor(np.stack([np.asarray(im.convert("L").resize((32, 32), Image.BOX)) for im in images]))
    labels = classify(gray[:, None], model=model)
    assert (labels == torch.arange(10)).sum() >= 8, labels.tolist()


def test_vae_round_trip_of_held_out_images(tiny, fashion_dir):
    from PIL import Image

    from sd_explorer.core.tiny.data import HELD_OUT, load_fashion, to_model_images
    from sd_explorer.core.vae import round_trip

    _, held = load_fashion(fashion_dir).split(HELD_OUT)
    x = to_model_images(held.images[:6])
    psnrs = []
    for img in ((x + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy():
        report = round_trip(tiny, Image.fromarray(img))
        assert report.input_values == 3 * 64 * 64 and report.latent_values == 4 * 8 * 8
        psnrs.append(report.psnr)
    assert np.mean(psnrs) >= 28.0, psnrs


def test_shipped_preview_factors_are_used_and_fit_our_vae(tiny, fashion_dir):
    from sd_explorer.core.preview import latents_to_rgb
    from sd_explorer.core.tiny.data import HELD_OUT, load_fashion, to_model_images
    from sd_explorer.core.tiny.preview import FILENAME, fit_preview

    shipped = json.loads((ASSET_DIR / FILENAME).read_text())
    assert torch.allclose(tiny.preview_factors.float(), torch.tensor(shipped["factors"]))
    _, held = load_fashion(fashion_dir).split(HELD_OUT)
    refit = fit_preview(tiny.vae, held.images[:32])
    assert refit["rmse"] < 0.25
    x = to_model_images(held.images[:4])
    z = tiny.vae.encode(x).latent_dist.mode() * tiny.vae.config.scaling_factor
    preview = latents_to_rgb(z, tiny.preview_factors, tiny.preview_bias).astype(np.float32)
    target = ((torch.nn.functional.avg_pool2d(x, 8) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    sd_preview = latents_to_rgb(z, torch.tensor([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                                                 [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]))
    ours_err = np.abs(preview - target).mean()
    assert ours_err < 40 and ours_err < np.abs(sd_preview.astype(np.float32) - target).mean()
