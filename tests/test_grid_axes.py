"""Two-axis grids: A1111's range syntax, the cell plan, and every cell equal to its single run."""

from __future__ import annotations

import pytest
import torch

from sd_explorer.core.errors import UserError
from sd_explorer.core.grid_axes import Axis, parse_numbers, plan
from sd_explorer.core.grid_run import run_grid
from sd_explorer.core.outputs import result_grid
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate, sample

PROMPT = "An oil painting of a collie in a top hat"


@pytest.mark.parametrize("text, integer, expected", [
    ("1-5", True, [1, 2, 3, 4, 5]),
    ("1-5 (+2)", True, [1, 3, 5]),
    ("1-10 [5]", True, [1, 3, 5, 7, 10]),
    ("1-10 [5]", False, [1, 3.25, 5.5, 7.75, 10]),
    ("10-1 (-3)", True, [10, 7, 4, 1]),
    ("1, 4-8 (+2), 12", False, [1, 4, 6, 8, 12]),
    ("0.5-1.5 (+0.5)", False, [0.5, 1.0, 1.5]),
    ("7.5", False, [7.5]),
])
def test_a1111_range_syntax(text, integer, expected):
    assert parse_numbers(text, integer) == pytest.approx(expected)


@pytest.mark.parametrize("name, text, message", [
    ("scale", "1-5 (+0)", "step"),
    ("scale", "1-5 (-1)", "step"),
    ("scale", "big", "not a number or a range"),
    ("scale", "", "empty"),
    ("seed", "1-1000", "more than 64"),
    ("size", "1", "unknown grid axis"),
    ("scheduler", "Euler,Nope", "scheduler"),
    ("long_prompt", "chunk,wrap", "long-prompt mode"),
    ("prompt_sr", "|cat", "cannot be empty"),
])
def test_axis_errors_name_the_fix(name, text, message):
    with pytest.raises(UserError, match=message):
        Axis.parse(name, text)


def test_plan_puts_each_value_in_its_cell(sd1):
    settings = SampleSettings("a photo of a cat", steps=3, seed=0)
    cells = plan(sd1, settings, Axis.parse("prompt_sr", "cat,dog,owl"), Axis.parse("seed", "5,9"))
    assert [(c.prompt, c.seed) for c, _ in cells] == [
        ("a photo of a cat", 5), ("a photo of a dog", 5), ("a photo of a owl", 5),
        ("a photo of a cat", 9), ("a photo of a dog", 9), ("a photo of a owl", 9)]
    assert [(r.prompt, r.seed) for _, r in cells] == [(c.prompt, c.seed) for c, _ in cells]
    with pytest.raises(UserError, match="not in the prompt"):
        plan(sd1, settings, Axis.parse("prompt_sr", "horse,dog"))
    with pytest.raises(UserError, match="same"):
        plan(sd1, settings, Axis.parse("seed", "1,2"), Axis.parse("seed", "3"))
    with pytest.raises(UserError, match="SDXL"):
        plan(sd1, settings, Axis.parse("crop", "0x0,64x0"))
    with pytest.raises(UserError, match="init-image"):
        plan(sd1, settings, Axis.parse("strength", "0.5"))


def test_batched_grid_cells_equal_single_runs(sd1_f64):
    """scale x seed x a negative: one batch; each cell is the single run with its settings."""
    settings = SampleSettings(PROMPT, steps=3, seed=0, scheduler="Euler ancestral")
    x, y = Axis.parse("scale", "1-9 (+4)"), Axis.parse("seed", "3,11")
    seen = []
    grid = run_grid(sd1_f64, settings, x, y, on_cells=lambda idx, r: seen.append(idx))
    assert seen == [[0, 1, 2, 3, 4, 5]] and grid.timings["batches"] == 1  # a 3x2 grid, one batch
    assert grid.captions == ["CFG 1 (none) · seed 3", "CFG 5 · seed 3", "CFG 9 · seed 3",  # both axes named
                             "CFG 1 (none) · seed 11", "CFG 5 · seed 11", "CFG 9 · seed 11"]
    assert grid.grid.x_labels == ["CFG 1 (none)", "CFG 5", "CFG 9"] and grid.grid.y_labels == ["seed 3", "seed 11"]
    for i, (scale, seed) in enumerate([(s, d) for d in (3, 11) for s in (1, 5, 9)]):
        single = generate(sd1_f64, SampleSettings(PROMPT, steps=3, seed=seed, guidance_scale=scale,
                                                  scheduler="Euler ancestral"))
        torch.testing.assert_close(grid.latents[i:i + 1], single.latents, atol=1e-9, rtol=1e-9)
        assert f"Seed: {seed}" in grid.parameters(i) and f"CFG scale: {scale:g}" in grid.parameters(i)
    params = grid.grid_parameters()
    assert 'X Type: CFG scale, X Values: "1, 5, 9", Y Type: Seed, Y Values: "3, 11"' in params
    picture = result_grid(grid)
    assert picture.size[0] > 3 * 128 and picture.size[1] > 2 * 128  # cells, plus the axis labels


def test_sequential_axis_runs_group_by_group(sd1_f64):
    """steps (one run per value) x negative / prompt S/R (batched within each run)."""
    settings = SampleSettings(PROMPT, steps=2, seed=4, guidance_scale=6.0)
    seen = []
    grid = run_grid(sd1_f64, settings, Axis.parse("prompt_sr", "collie|cat"), Axis.parse("steps", "2,3"),
                    on_cells=lambda idx, r: seen.append(idx))
    assert seen == [[0, 1], [2, 3]]
    single = generate(sd1_f64, SampleSettings(PROMPT.replace("collie", "cat"), steps=3, seed=4, guidance_scale=6.0))
    torch.testing.assert_close(grid.latents[3:4], single.latents, atol=1e-9, rtol=1e-9)
    assert grid.parameters(3).startswith(PROMPT.replace("collie", "cat")) and "Steps: 3" in grid.parameters(3)
    grid = run_grid(sd1_f64, settings, Axis.parse("negative", "|blurry, dark"), Axis.parse("scheduler", "DDIM,Euler"))
    single = generate(sd1_f64, SampleSettings(PROMPT, negative_prompt="blurry, dark", steps=2, seed=4,
                                              guidance_scale=6.0, scheduler="Euler"))
    torch.testing.assert_close(grid.latents[3:4], single.latents, atol=1e-9, rtol=1e-9)
    assert "Sampler: Euler" in grid.parameters(3) and "Sampler: DDIM" in grid.parameters(0)


def test_long_prompt_axis_shows_truncation_against_chunks(sd1_f64):
    long = "a watercolour painting of a lighthouse on a cliff at dusk, " * 7 + "in the snow"
    settings = SampleSettings(long, steps=2, seed=1, guidance_scale=5.0)
    grid = run_grid(sd1_f64, settings, Axis.parse("long_prompt", "chunk,truncate"))
    assert grid.timings["batches"] == 2 and grid.captions == ["chunk", "truncate"]
    single = generate(sd1_f64, SampleSettings(long, steps=2, seed=1, guidance_scale=5.0, long_prompt="truncate"))
    torch.testing.assert_close(grid.latents[1:2], single.latents, atol=1e-9, rtol=1e-9)
    assert not torch.allclose(grid.latents[0], grid.latents[1])
    assert "Long prompt: truncate" in grid.parameters(1) and grid.dropped_tokens.endswith("in the snow")


def test_prompts_of_different_lengths_keep_their_own_padding(sd1_f64):
    """A prompt S/R value that makes the prompt overflow runs in its own batch, so no cell is padded."""
    settings = SampleSettings("a cat", steps=2, seed=2, guidance_scale=3.0)
    grid = run_grid(sd1_f64, settings, Axis.parse("prompt_sr", "cat|dog|" + "dog " * 80))
    assert grid.timings["batches"] == 2
    single = generate(sd1_f64, SampleSettings("a dog", steps=2, seed=2, guidance_scale=3.0))
    torch.testing.assert_close(grid.latents[1:2], single.latents, atol=1e-9, rtol=1e-9)


def test_sdxl_size_and_crop_grid(sdxl):
    from sd_explorer.core.batch_rows import Row

    settings = SampleSettings(PROMPT, steps=2, seed=1, guidance_scale=5.0)
    grid = run_grid(sdxl, settings, Axis.parse("original_size", "256x256,1024x1024"),
                    Axis.parse("crop", "0x0,32x0"))
    assert grid.timings["batches"] == 1 and grid.grid.y_labels == ["crop 0,0", "crop 32,0"]
    single = sample(sdxl, settings, [Row(5.0, original_size=(1024, 1024), crop_top_left=(32, 0))])
    torch.testing.assert_close(grid.latents[3:4], single.latents, atol=1e-9, rtol=1e-9)
    assert "Original size: 1024x1024" in grid.parameters(3) and "Crop top-left: 32,0" in grid.parameters(3)


def _photo():
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("model, name, text", [
    ("sd1_f64", "scale", "1,4"),
    ("sd1_f64", "negative", "|white hat"),
    ("sdxl", "original_size", "256x256,1024x1024"),
    ("sdxl", "crop", "0x0,32x0"),
])
def test_batched_sweep_is_a_one_axis_grid(request, model, name, text):
    """The former ``run_axis`` batched axes: one request of one row per value (its images and captions),
    and each cell its single run."""
    from sd_explorer.core.batch_rows import Row

    model = request.getfixturevalue(model)
    settings = SampleSettings("a man in a white hat", steps=2, seed=3, guidance_scale=5.0, scheduler="DDIM")
    axis = Axis.parse(name, text)
    grid = run_grid(model, settings, axis)
    field = {"scale": "scale", "negative": "negative_prompt", "original_size": "original_size",
             "crop": "crop_top_left"}[name]
    rows = [Row(**{"scale": 5.0, field: v}) for v in axis.values]
    former = sample(model, settings, rows)  # what run_axis did for a batched axis
    assert grid.timings["batches"] == 1 and grid.captions == former.captions
    torch.testing.assert_close(grid.latents, former.latents, atol=1e-9, rtol=1e-9)
    for i, row in enumerate(rows):
        single = sample(model, settings, [row])
        torch.testing.assert_close(grid.latents[i:i + 1], single.latents, atol=1e-9, rtol=1e-9)
        assert grid.parameters(i) == single.parameters(0)


@pytest.mark.parametrize("name, text, fixed, caption", [
    ("strength", "0.5,1", {"init_image": _photo()}, "strength {:g}"),
    ("color_scale", "0,40", {"color_target": (0.0, 0.0, 1.0)}, "colour x{:g}"),
])
def test_sequential_sweep_is_a_one_axis_grid(sd1_f64, name, text, fixed, caption):
    """The former ``run_axis`` sequential axes: one run per value, each the single run with that value."""
    import dataclasses

    settings = SampleSettings(PROMPT, steps=4, seed=2, guidance_scale=5.0, scheduler="DDIM", **fixed)
    axis = Axis.parse(name, text)
    batches = []
    grid = run_grid(sd1_f64, settings, axis, on_batch=batches.append)
    assert batches == [[0], [1]] and grid.captions == [caption.format(v) for v in axis.values]
    for i, value in enumerate(axis.values):
        single = generate(sd1_f64, dataclasses.replace(settings, **{name: value}))
        torch.testing.assert_close(grid.latents[i:i + 1], single.latents, atol=1e-9, rtol=1e-9)
        assert grid.parameters(i) == single.parameters(0)
    assert not torch.allclose(grid.latents[0], grid.latents[1], atol=1e-4)


@pytest.mark.parametrize("name, text, message", [
    ("strength", "0.5", "a strength sweep needs a starting image: give --init-image PATH."),
    ("color_scale", "1", "a colour-scale sweep needs a target colour: give --color '#3060ff'."),
    ("original_size", "256x256", "the original size axis needs an SDXL model: load one with --model."),
    ("crop", "0x0", "the crop axis needs an SDXL model: load one with --model."),
])
def test_sweep_errors_are_one_line(sd1, name, text, message):
    """The former ``run_axis`` lines, word for word, before any sampling."""
    with pytest.raises(UserError) as info:
        run_grid(sd1, SampleSettings(PROMPT, steps=1), Axis.parse(name, text))
    assert str(info.value) == message
