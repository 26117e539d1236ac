"""Per-token cross-attention heat maps (core.attention): exact bookkeeping, batching, SDXL, meaning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sd_explorer.core.attention import CrossAttentionProbe, heat_for, level_sizes, normalise, recording, token_positions
from sd_explorer.core.errors import UserError
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate, sweep

PROMPT = "An oil painting of a collie in a top hat"


def _probes(model) -> int:
    return sum(isinstance(p, CrossAttentionProbe) for p in model.unet.attn_processors.values())


def _heads_per_call(model) -> float:
    """What one UNet call adds to a pixel's sum over tokens: every cross-attention layer's heads."""
    return sum(m.heads for name, m in model.unet.named_modules() if name.endswith("attn2"))


def test_level_sizes_round_up_like_the_unet():
    assert level_sizes(64, 64, 4) == [(64, 64), (32, 32), (16, 16), (8, 8)]
    assert level_sizes(9, 5, 3) == [(9, 5), (5, 3), (3, 2)]


def test_maps_are_probabilities_summed_over_heads_layers_and_steps(sd1_f64):
    settings = SampleSettings(PROMPT, steps=3, seed=1, scheduler="DDIM")
    with recording(sd1_f64, settings, 1) as rec:
        assert _probes(sd1_f64) == rec.layers > 0
        generate(sd1_f64, settings)
    assert _probes(sd1_f64) == 0  # the original processors are back
    maps = rec.maps()
    h, w = 64 // 8, 64 // 8
    assert maps.shape == (1, 77, h, w)
    # each probe's softmax sums to 1 over the 77 tokens per pixel and head: per pixel, heads x layers x steps
    expected = _heads_per_call(sd1_f64) * 3
    torch.testing.assert_close(maps.sum(1), torch.full((1, h, w), float(expected)), atol=1e-4, rtol=1e-5)


def test_the_probe_leaves_the_image_unchanged(sd1_f64):
    settings = SampleSettings(PROMPT, steps=3, seed=2)
    plain = generate(sd1_f64, settings)
    with recording(sd1_f64, settings, 1):
        probed = generate(sd1_f64, settings)
    torch.testing.assert_close(probed.latents, plain.latents, atol=1e-9, rtol=1e-9)


def test_each_sweep_cell_has_the_maps_of_its_single_run(sd1_f64):
    """Only the text rows are recorded: a no-CFG cell beside guided ones keeps its own maps."""
    settings = SampleSettings(PROMPT, steps=3, seed=3, scheduler="Euler")
    with recording(sd1_f64, settings, 2) as rec:
        sweep(sd1_f64, settings, [1.0, 6.0])
    both = rec.maps()
    for i, scale in enumerate([1.0, 6.0]):
        single = SampleSettings(PROMPT, steps=3, seed=3, scheduler="Euler", guidance_scale=scale)
        with recording(sd1_f64, single, 1) as one:
            generate(sd1_f64, single)
        torch.testing.assert_close(both[i], one.maps()[0], atol=1e-6, rtol=1e-6)


def test_recording_restores_processors_after_an_error(sd1):
    before = {k: type(v) for k, v in sd1.unet.attn_processors.items()}
    with pytest.raises(RuntimeError):
        with recording(sd1, SampleSettings(PROMPT), 1):
            raise RuntimeError("boom")
    assert {k: type(v) for k, v in sd1.unet.attn_processors.items()} == before


def test_token_positions_and_a_word_that_is_not_there(sd1):
    assert token_positions(sd1, PROMPT, "collie") == [6]
    assert token_positions(sd1, "a dog and a dog", "dog") == [2, 5]
    with pytest.raises(UserError, match="not a token of the prompt: pick one of .*collie"):
        token_positions(sd1, PROMPT, "zebra")


def test_normalise_puts_all_cells_on_one_scale():
    heat = np.array([[[1.0, 2.0]], [[3.0, 5.0]]])
    scaled, lo, hi = normalise(heat)
    assert (lo, hi) == (1.0, 5.0) and scaled.tolist() == [[[0.0, 0.25]], [[0.5, 1.0]]]


def test_sdxl_records_and_finds_words_in_both_tokenizers():
    from sd_explorer.core.models import load_model
    from tests.sd_factory import build_sdxl_pipeline

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        build_sdxl_pipeline().save_pretrained(Path(tmp) / "m", safe_serialization=True)
        model = load_model(str(Path(tmp) / "m"), device="cpu")
    settings = SampleSettings(PROMPT, steps=2, seed=0)
    with recording(model, settings, 2) as rec:
        sweep(model, settings, [1.0, 5.0])
    maps = rec.maps()
    h, w = model.default_size[1] // 8, model.default_size[0] // 8
    assert maps.shape == (2, 77, h, w)
    torch.testing.assert_close(maps.sum(1), torch.full((2, h, w), float(_heads_per_call(model) * 2)),
                               atol=1e-3, rtol=1e-5)
    assert token_positions(model, PROMPT, "collie") == [6]
    heat = heat_for(model, PROMPT, maps, "top hat")
    assert heat.positions == [9, 10] and heat.heat.shape == (2, h, w) and heat.hi > heat.lo


def test_tiny_sneaker_attends_to_the_sneaker_more_than_the_background():
    """The class word's heat (stretched from its lowest to its highest sum, as shown) over the object
    (bright pixels of the decoded image) against the black background: measured 1.13, 1.13, 1.33, 1.24
    over these four cells. The raw sums differ by only 1-3 %: the tiny model's attention is nearly even
    (87 % of it goes to the padding tokens, which carry the whole prompt)."""
    from sd_explorer.core.models import load_model

    model = load_model("tiny", device="cpu")
    prompt = "a photo of a sneaker"
    ratios = []
    for seed in (0, 1):
        settings = SampleSettings(prompt, steps=10, seed=seed)
        with recording(model, settings, 2) as rec:
            result = sweep(model, settings, [1.0, 4.0])
        heat = heat_for(model, prompt, rec.maps(), "sneaker").heat
        for cell, image in zip(heat, result.images):
            h, w = cell.shape
            grey = np.asarray(image.convert("L").resize((w, h), 2), dtype=np.float32) / 255
            obj = grey > 0.2
            assert 5 < obj.sum() < obj.size - 5
            ratios.append(float(cell[obj].mean() / max(cell[~obj].mean(), 1e-6)))
    assert min(ratios) > 1.05, ratios


def test_under_graphs_a_cache_of_its_own_marks_warm_up(sd1):
    """CPU check of the CUDA-graph plumbing (the GPU test compares the maps): inside ``recording``
    the fast UNet replays from a graph cache of the recording's own, whose warm-up does not count."""
    from sd_explorer.core.fast import FastOptions, FastUNet

    fast = FastUNet(sd1.unet, FastOptions())  # constructed only: nothing is captured on the CPU here
    plain = fast.graphed
    sd1.unet_forward = fast
    try:
        with recording(sd1, SampleSettings(PROMPT), 2) as rec:
            ours = fast.graphed
            assert ours is not plain and ours.name == "UNet + attention maps"
            with ours.setup():  # what GraphedCallable wraps warm-up and capture in
                assert rec.accumulator.warming
                rec.accumulator.add(torch.ones(2 * 4, 64, 77), heads=4)  # a warm-up call: not counted
            assert not rec.accumulator.warming and rec.accumulator.calls == 0
            rec.accumulator.add(torch.ones(2 * 4, 64, 77), heads=4)
            assert rec.accumulator.calls == 1
        assert fast.graphed is plain
        with recording(sd1, SampleSettings(PROMPT), 2):
            assert fast.graphed is ours  # one cache per row count, kept with its buffers
    finally:
        sd1.unet_forward = None
