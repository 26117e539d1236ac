"""The denoising timeline (core.timeline), the noise schedule (core.noise_schedule) and their CLI outputs,
with the attention command's files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sd_explorer.core.cli import main
from sd_explorer.core.errors import UserError
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import sweep
from sd_explorer.core.noise_schedule import fashion_schedule, schedule_of
from sd_explorer.core.timeline import Timeline, parse_steps

PROMPT = "An oil painting of a collie in a top hat"


def test_timeline_keeps_every_step_of_every_cell(sd1_f64):
    timeline = Timeline(sd1_f64)
    settings = SampleSettings(PROMPT, steps=4, seed=5, scheduler="Euler")
    result = sweep(sd1_f64, settings, [1.0, 5.0], callback=timeline)
    assert [f.index for f in timeline.frames] == [0, 1, 2, 3] and timeline.total == 4
    torch.testing.assert_close(timeline.frames[-1].xt, result.latents)  # x_t after the last step is the result
    # the kept x0 is a copy: the first step's estimate is not the last one
    assert not torch.equal(timeline.frames[0].x0, timeline.frames[-1].x0)
    sigmas = [f.sigma for f in timeline.frames]
    assert sigmas == sorted(sigmas, reverse=True)  # noise falls step by step
    assert timeline.frames[0].describe(4).startswith(f"step 1/4 · t={timeline.frames[0].timestep:.0f} · σ=")
    previews = timeline.previews(sd1_f64)
    assert previews.shape == (4, 2, 8, 8, 3) and previews.dtype == np.uint8
    # a second run starts afresh
    sweep(sd1_f64, SampleSettings(PROMPT, steps=2, seed=5, scheduler="DDIM"), [3.0], callback=timeline)
    assert len(timeline.frames) == 2 and timeline.frames[0].x0.shape[0] == 1


def test_parse_steps():
    assert parse_steps("", 30) == [1, 7, 13, 18, 24, 30]
    assert parse_steps("", 3) == [1, 2, 3]
    assert parse_steps("1, 10,30", 30) == [1, 10, 30]
    assert parse_steps(",".join(["3", "1"] * 25000), 30) == [3, 1]  # 50,000 entries: two columns, not 50,000
    with pytest.raises(UserError, match="outside 1..30"):
        parse_steps("0,31", 30)
    with pytest.raises(UserError, match="not a whole number"):
        parse_steps("a", 30)


def test_schedules(sd1):
    sd = schedule_of(sd1.scheduler)
    fm = fashion_schedule()
    assert len(sd.alpha_bar) == len(fm.alpha_bar) == 1000
    assert fm.alpha_bar[0] == pytest.approx(1 - 1e-4) and sd.alpha_bar[0] == pytest.approx(1 - 0.00085)
    assert np.all(np.diff(sd.alpha_bar) < 0) and np.all(np.diff(fm.snr) < 0)
    np.testing.assert_allclose(sd.noise ** 2 + sd.alpha_bar, 1.0)
    assert sd.snr[500] == pytest.approx(1 / sd.sigma(500) ** 2)
    # the chapter's linear schedule destroys the signal faster than SD's scaled-linear one
    assert fm.alpha_bar[999] < sd.alpha_bar[999]


def test_sweep_timeline_writes_a_strip(tmp_path):
    code = main(["sweep", "a photo of a sneaker", "--steps", "4", "--scales", "1,4", "--scheduler", "DDIM",
                 "--timeline", "1,4", "--out", str(tmp_path)])
    assert code == 0
    strip = next(tmp_path.glob("timeline-*.png"))
    image = Image.open(strip)
    assert "Timeline: x0 estimate at steps 1, 4" in image.info["parameters"]
    left = image.size[0] - 2 * 128  # two steps across, one row per cell, the rows labelled down the left
    assert left > 0 and image.size[1] == 24 + 2 * 128  # and the steps along the top
    import numpy as np

    pixels = np.asarray(image.convert("L"))
    assert pixels[24:, :left].min() < 128, "each row's label (the cell's caption) is drawn on the left"
    assert pixels[:24, left:].min() < 128, "each column's label (the step) is drawn on top"


def test_sweep_timeline_needs_one_batch(tmp_path, capsys):
    """A negative past 75 tokens runs in a batch of its own (its cell equals its single run): no timeline."""
    long = "blurry " * 80
    assert main(["sweep", "a photo of a sneaker", "--steps", "2", "--negatives", f"|{long}", "--timeline", "1,2",
                 "--out", str(tmp_path)]) == 2
    assert "--timeline keeps one batched run, and these values need 2" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
    assert main(["sweep", "a", "--steps", "2", "--strengths", "0.5", "--timeline", "--out", str(tmp_path)]) == 2
    assert "use it with --scales" in capsys.readouterr().err


def test_sweep_timeline_bad_steps_fail_before_loading(tmp_path, capsys):
    assert main(["sweep", "a", "--steps", "4", "--timeline", "9", "--out", str(tmp_path)]) == 2
    assert "outside 1..4" in capsys.readouterr().err and not tmp_path.exists() or not any(tmp_path.iterdir())


def test_attention_writes_image_overlay_and_grayscale_heat(tmp_path):
    code = main(["attention", "a photo of a sneaker", "--tokens", "sneaker,photo,sneaker, sneaker", "--steps", "3",
                 "--out", str(tmp_path)])
    # a word named three times is mapped once (no sneaker-heat-0002 beside sneaker-heat-0001)
    assert code == 0
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["a-photo-of-a-sneaker-0001.png", "photo-heat-0001.png", "photo-overlay-0001.png",
                     "sneaker-heat-0001.png", "sneaker-overlay-0001.png"]
    image = Image.open(tmp_path / "a-photo-of-a-sneaker-0001.png")
    heat = Image.open(tmp_path / "sneaker-heat-0001.png")
    assert heat.mode == "L" and heat.size == image.size
    assert "Attention: 'sneaker' at token position(s) 5" in heat.info["parameters"]
    assert np.asarray(heat).max() > 200 and np.asarray(heat).min() < 50  # stretched from lo to hi (then resized)
    # a second run never overwrites
    main(["attention", "a photo of a sneaker", "--tokens", "sneaker", "--steps", "2", "--out", str(tmp_path)])
    assert (tmp_path / "sneaker-heat-0002.png").exists()


def test_attention_unknown_token_is_one_line(tmp_path, capsys):
    assert main(["attention", "a photo of a sneaker", "--tokens", "zebra", "--steps", "2",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sd-explorer: error: 'zebra' is not a token of the prompt: pick one of a, photo")
