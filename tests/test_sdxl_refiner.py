"""SDXL base + refiner hand-off in the engine's own loop, against diffusers' two pipelines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sd_explorer.core.cli import main
from sd_explorer.core.batch_rows import Row
from sd_explorer.core.conditioning import Encoder
from sd_explorer.core.errors import UserError
from sd_explorer.core.model_folder import detect_family, resolve_tokenizers
from sd_explorer.core.models import load_model
from sd_explorer.core.refiner import refiner_first
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate, sample, sweep
from tests.conftest import ROOT

PROMPT = "An oil painting of a collie in a top hat"
STEPS = 6  # leading spacing: timesteps 831, 665, 499, 333, 167, 1


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from tests.sd_factory import save_sdxl_pipeline, save_sdxl_refiner_pipeline

    root = tmp_path_factory.mktemp("xl")
    return save_sdxl_pipeline(root / "sdxl-base"), save_sdxl_refiner_pipeline(root / "sdxl-refiner")


def _f64(model):
    for module in (model.unet, model.vae, model.text_encoder, model.text_encoder_2):
        if module is not None:
            module.double()
    model.dtype = torch.float64
    return model


@pytest.fixture(scope="module")
def base(folders):
    return _f64(load_model(str(folders[0]), device="cpu"))


@pytest.fixture(scope="module")
def refiner(folders):
    return _f64(load_model(str(folders[1]), device="cpu"))


def _schedulers(name, base, refiner):
    """Fresh diffusers schedulers for the reference pipelines, built with diffusers' own classes (DDIM with
    ``clip_sample=False``, as ``core.schedulers.make_scheduler`` builds it for latents)."""
    import diffusers

    cls, extra = {None: (None, {}), "DDIM": ("DDIMScheduler", {"clip_sample": False}),
                  "Euler ancestral": ("EulerAncestralDiscreteScheduler", {})}[name]
    return [(getattr(diffusers, cls) if cls else type(m.scheduler)).from_config(m.scheduler.config, **extra)
            for m in (base, refiner)]


def _reference(base, refiner, fraction, scheduler=None, negative="", guidance=5.0, n=1, output_type="latent", **kw):
    """diffusers: the base to ``denoising_end``, then the refiner from ``denoising_start``, one generator."""
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    base_sched, refiner_sched = _schedulers(scheduler, base, refiner)
    high = StableDiffusionXLPipeline(vae=base.vae, text_encoder=base.text_encoder, text_encoder_2=base.text_encoder_2,
                                     tokenizer=base.tokenizer, tokenizer_2=base.tokenizer_2, unet=base.unet,
                                     scheduler=base_sched, force_zeros_for_empty_prompt=True)
    low = StableDiffusionXLImg2ImgPipeline(vae=refiner.vae, text_encoder=None, text_encoder_2=refiner.text_encoder_2,
                                           tokenizer=None, tokenizer_2=refiner.tokenizer_2, unet=refiner.unet,
                                           scheduler=refiner_sched, requires_aesthetics_score=True,
                                           force_zeros_for_empty_prompt=refiner.force_zeros_for_empty_prompt)
    for pipe in (high, low):
        pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator("cpu").manual_seed(5)
    common = dict(negative_prompt=negative or None, num_inference_steps=STEPS, guidance_scale=guidance,
                  num_images_per_prompt=n, generator=generator)
    latents = high(PROMPT, height=64, width=64, denoising_end=fraction, output_type="latent", **common).images
    return low(PROMPT, image=latents, denoising_start=fraction, output_type=output_type, **common, **kw).images


def _ours(base, refiner, fraction, scheduler=None, negative="", guidance=5.0, n=1, callback=None, **kw):
    settings = SampleSettings(PROMPT, negative_prompt=negative, steps=STEPS, guidance_scale=guidance, seed=5,
                              scheduler=scheduler)
    row = Row(guidance, negative, **kw)
    return sample(base, settings, [row] * n, refiner=refiner, handoff=fraction, callback=callback, batch_noise=True)


def test_refiner_folder_loads_as_sdxl_refiner(folders, refiner, tmp_path):
    assert refiner.family == "sdxl-refiner" and refiner.text_encoder is None
    assert refiner.tokenizer_2 is not None and refiner.text_encoder_2.config.hidden_size == 32
    assert not refiner.force_zeros_for_empty_prompt and refiner.preview_bias is not None
    assert [label for label, _ in resolve_tokenizers(str(folders[1]))] == ["OpenCLIP bigG"]
    assert detect_family(folders[0]) == "sdxl"
    # without requires_aesthetics_score in model_index.json, the UNet's shape still says "5 time ids"
    bare = tmp_path / "bare"
    for name in ("unet", "text_encoder_2"):
        (bare / name).mkdir(parents=True)
        shutil.copy(folders[1] / name / "config.json", bare / name / "config.json")
    index = json.loads((folders[1] / "model_index.json").read_text())
    del index["requires_aesthetics_score"]
    (bare / "model_index.json").write_text(json.dumps(index))
    assert detect_family(bare) == "sdxl-refiner"


def test_refiner_alone_is_refused_naming_the_option(refiner):
    with pytest.raises(UserError, match="--refiner") as err:
        generate(refiner, SampleSettings(PROMPT, steps=2))
    assert "\n" not in str(err.value)


def test_refiner_conditioning_matches_diffusers(refiner):
    """OpenCLIP bigG's penultimate states only, its pooled output, and 5 ids ending in the aesthetic score."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    cond = Encoder(refiner).batch(PROMPT, [Row(5.0, "blurry")], 64, 64)
    pipe = StableDiffusionXLImg2ImgPipeline(vae=refiner.vae, text_encoder=None, text_encoder_2=refiner.text_encoder_2,
                                            tokenizer=None, tokenizer_2=refiner.tokenizer_2, unet=refiner.unet,
                                            scheduler=refiner.scheduler, requires_aesthetics_score=True)
    text, negative, pooled, negative_pooled = pipe.encode_prompt(PROMPT, device="cpu", negative_prompt="blurry")
    ids, negative_ids = pipe._get_add_time_ids((64, 64), (0, 0), (64, 64), 6.0, 2.5, (64, 64), (0, 0), (64, 64),
                                               dtype=text.dtype, text_encoder_projection_dim=32)
    assert cond.hidden.shape == (2, 77, 32)
    torch.testing.assert_close(cond.hidden, torch.cat([negative, text]), atol=0, rtol=0)
    torch.testing.assert_close(cond.added["text_embeds"], torch.cat([negative_pooled, pooled]), atol=0, rtol=0)
    assert cond.added["time_ids"].tolist() == torch.cat([negative_ids, ids]).tolist() == [[64, 64, 0, 0, 2.5],
                                                                                          [64, 64, 0, 0, 6.0]]


@pytest.mark.parametrize("scheduler, negative, guidance, fraction, n", [
    (None, "", 5.0, 0.8, 1),  # SDXL's own EulerDiscrete, the documented split
    (None, "blurry", 5.0, 0.5, 1),
    ("DDIM", "", 5.0, 0.5, 1),
    ("DDIM", "blurry", 5.0, 0.8, 1),
    (None, "", 5.0, 0.667, 1),  # cut-off 333 is a timestep: the base runs it (t >= cutoff)
    (None, "", 5.0, 0.6664, 1),  # cut-off round(333.6) = 334: timestep 333 is the refiner's
    ("Euler ancestral", "blurry", 5.0, 0.8, 2),  # stochastic: one generator through both stages, a batch
    (None, "", 1.0, 0.8, 1),  # no CFG
])
def test_equals_diffusers_base_then_refiner(base, refiner, scheduler, negative, guidance, fraction, n):
    ours = _ours(base, refiner, fraction, scheduler, negative, guidance, n)
    ref = _reference(base, refiner, fraction, scheduler, negative, guidance, n)
    assert ours.base_steps + ours.refiner_steps == STEPS
    torch.testing.assert_close(ours.latents, ref, atol=1e-7, rtol=1e-7)


def test_second_order_scheduler_does_not_split_a_step(base, refiner):
    """Heun lists 831, 665, 665, …, 1, 1: four timesteps below 200 is an even count, so the refiner starts one
    earlier (diffusers' special case), and the result still equals diffusers'."""
    from diffusers import HeunDiscreteScheduler

    saved = base.scheduler, refiner.scheduler
    base.scheduler, refiner.scheduler = (HeunDiscreteScheduler.from_config(s.config) for s in saved)
    try:
        probe = HeunDiscreteScheduler.from_config(refiner.scheduler.config)
        probe.set_timesteps(STEPS)
        assert int((probe.timesteps < 200).sum()) == 4 and refiner_first(probe, 0.8) == len(probe.timesteps) - 5
        ours = _ours(base, refiner, 0.8)
        torch.testing.assert_close(ours.latents, _reference(base, refiner, 0.8), atol=1e-7, rtol=1e-7)
    finally:
        base.scheduler, refiner.scheduler = saved


def test_aesthetic_scores_reach_the_refiner(base, refiner):
    ours = _ours(base, refiner, 0.5, negative="blurry", aesthetic_score=7.0, negative_aesthetic_score=1.0)
    ref = _reference(base, refiner, 0.5, negative="blurry", aesthetic_score=7.0, negative_aesthetic_score=1.0)
    torch.testing.assert_close(ours.latents, ref, atol=1e-7, rtol=1e-7)
    assert not torch.allclose(ours.latents, _ours(base, refiner, 0.5, negative="blurry").latents, atol=1e-4)


def test_image_and_progress(base, refiner):
    seen = []
    ours = _ours(base, refiner, 0.5, callback=lambda info: seen.append((info.index, info.total)))
    ref = _reference(base, refiner, 0.5, output_type="np")
    ours_np = np.asarray(ours.images[0], dtype=np.float64) / 255
    assert np.abs(ours_np - ref[0]).max() <= 0.5 / 255 + 1e-9  # the same pixels, up to the uint8 rounding
    assert seen == [(i, STEPS) for i in range(STEPS)] and (ours.base_steps, ours.refiner_steps) == (2, 4)
    assert "Refiner: sdxl-refiner, Refiner switch at: 0.5" in ours.parameters(0)


@pytest.mark.parametrize("fraction", [0, 1, 1.0, -0.2, 1.5, float("nan"), True, "0.8"])
def test_bad_fraction_names_the_fix(base, refiner, fraction):
    with pytest.raises(UserError, match=r"--refiner-at must be between 0 and 1.*try 0\.8"):
        _ours(base, refiner, fraction)


def test_wrong_models_and_settings_are_refused(base, refiner, sd1):
    with pytest.raises(UserError, match="pass an SDXL base model"):
        _ours(sd1, refiner, 0.8)
    with pytest.raises(UserError, match="not an SDXL refiner"):
        _ours(base, base, 0.8)
    with pytest.raises(UserError, match="pass an SDXL base model"):
        _ours(refiner, refiner, 0.8)
    settings = SampleSettings(PROMPT, steps=1)  # one timestep (1): all of it below the cut-off
    with pytest.raises(UserError, match="leave the base no step: raise --steps"):
        generate(base, settings, refiner=refiner, handoff=0.5)
    with pytest.raises(UserError, match="--init-image"):
        generate(base, SampleSettings(PROMPT, steps=4, init_image=Image.new("RGB", (64, 64))), refiner=refiner)
    with pytest.raises(UserError, match="aesthetic score"):
        sample(base, SampleSettings(PROMPT, steps=4), [Row(5.0, aesthetic_score=float("nan"))], refiner=refiner)


def test_cli_generate_with_refiner(folders, tmp_path):
    code = main(["generate", "a red fox", "--model", str(folders[0]), "--refiner", str(folders[1]),
                 "--refiner-at", "0.5", "--steps", str(STEPS), "--guidance", "5", "--seed", "3", "--device", "cpu",
                 "--out", str(tmp_path)])
    assert code == 0
    (png,) = tmp_path.glob("*.png")
    params = Image.open(png).text["parameters"]
    assert "Model: sdxl-base, Refiner: sdxl-refiner, Refiner switch at: 0.5" in params and "Steps: 6" in params
    expected = generate(load_model(str(folders[0]), device="cpu"),
                        SampleSettings("a red fox", steps=STEPS, guidance_scale=5.0, seed=3),
                        refiner=load_model(str(folders[1]), device="cpu"), handoff=0.5)
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), np.asarray(expected.images[0]))


@pytest.mark.parametrize("args, message", [
    (["--refiner-at", "0.5"], "needs --refiner REFINER"),
    (["--refiner", "REF", "--refiner-at", "0"], "--refiner-at must be between 0 and 1"),
    (["--model", "SD1", "--refiner", "REF"], "pass an SDXL base model"),
    (["--model", "BASE", "--refiner", "BASE"], "not an SDXL refiner"),
])
def test_cli_refiner_errors(folders, sd1_folder, tmp_path, capsys, args, message):
    names = {"REF": str(folders[1]), "BASE": str(folders[0]), "SD1": str(sd1_folder)}
    argv = ["generate", "x", "--steps", "2", "--device", "cpu", "--out", str(tmp_path / "out")]
    assert main(argv + [names.get(a, a) for a in args]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sd-explorer: error:")]
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists()


def test_cli_bad_refiner_at_exits_2_in_one_line(folders, tmp_path):
    out = subprocess.run([sys.executable, "-m", "sd_explorer.core", "generate", "x", "--model", str(folders[0]), "--refiner",
                          str(folders[1]), "--refiner-at", "1.5", "--out", str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("sd-explorer: error:")]
    assert len(errors) == 1 and "--refiner-at must be between 0 and 1" in errors[0] and "try 0.8" in errors[0]
    assert "Traceback" not in out.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("scheduler", [None, "Euler ancestral"])
def test_refined_sweep_cells_equal_single_refined_runs(base, refiner, scheduler):
    """One batch per stage, one row per scale: cell i is a refined generate at scale i (float64, 1e-9),
    stochastic schedulers included (each row's generator runs through both stages)."""
    settings = SampleSettings(PROMPT, negative_prompt="blurry", steps=STEPS, seed=5, scheduler=scheduler)
    swept = sweep(base, settings, [1.0, 3.0, 7.5], refiner=refiner, handoff=0.7)
    assert swept.scales == [1.0, 3.0, 7.5] and "Refiner switch at: 0.7" in swept.parameters(2)
    for i, scale in enumerate(swept.scales):
        single = generate(base, SampleSettings(PROMPT, negative_prompt="blurry", steps=STEPS, seed=5,
                                               scheduler=scheduler, guidance_scale=scale), refiner=refiner, handoff=0.7)
        torch.testing.assert_close(swept.latents[i:i + 1], single.latents, atol=1e-9, rtol=0)
    with pytest.raises(UserError, match="at most 16"):
        sweep(base, settings, [2.0] * 17, refiner=refiner)


def test_cli_sweep_with_refiner(folders, tmp_path, capsys):
    code = main(["sweep", "a red fox", "--model", str(folders[0]), "--refiner", str(folders[1]), "--scales", "1,4",
                 "--steps", str(STEPS), "--seed", "3", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    grid = [p for p in tmp_path.glob("sweep-*.png")]
    assert len(grid) == 1 and "Refiner: sdxl-refiner, Refiner switch at: 0.8" in Image.open(grid[0]).text["parameters"]
    assert len(list(tmp_path.glob("*.png"))) == 3
    # every batched axis goes through the one entry point, so through the refiner too
    assert main(["sweep", "x", "--model", str(folders[0]), "--refiner", str(folders[1]), "--negatives", "a|b",
                 "--steps", str(STEPS), "--device", "cpu", "--out", str(tmp_path / "neg")]) == 0
    (grid,) = (tmp_path / "neg").glob("sweep-*.png")
    assert "Refiner: sdxl-refiner" in Image.open(grid).text["parameters"]
    assert main(["sweep", "x", "--model", str(folders[0]), "--refiner", str(folders[1]), "--init-image",
                 str(grid), "--strengths", "0.5", "--device", "cpu", "--out", str(tmp_path / "no")]) == 2
    assert "--init-image cannot be combined with --refiner" in capsys.readouterr().err


def test_tui_sweep_hands_off_to_the_refiner(folders, tmp_path):
    """The explorer with --refiner: the header names it and the sweep pane's cells are refined runs."""
    from tests.test_tui_support import SIZE, make_app, sync, wait_for

    @sync
    async def run():
        app = make_app(tmp_path, model=str(folders[0]), refiner=str(folders[1]), refiner_at=0.5, steps=STEPS,
                       prompt=PROMPT)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.model is not None, what="base + refiner")
            assert app.sub_title.endswith("→ sdxl-refiner at 0.5")
            await pilot.press("f3", "ctrl+r")
            pane = app.query_one("SweepPane")
            await wait_for(pilot, lambda: pane.result is not None, what="refined sweep")
            result = pane.result
            assert result.refiner_name == "sdxl-refiner" and result.high_noise_frac == 0.5
            assert "Refiner switch at: 0.5" in result.parameters(0)
            base = load_model(str(folders[0]), device="cpu")
            refiner = load_model(str(folders[1]), device="cpu")
            single = generate(base, SampleSettings(PROMPT, steps=STEPS, seed=0, guidance_scale=result.scales[-1]),
                              refiner=refiner, handoff=0.5)
            torch.testing.assert_close(result.latents[-1:], single.latents, atol=1e-4, rtol=1e-4)

    run()


def test_tui_exercises_hand_off_to_the_refiner(folders, tmp_path, monkeypatch):
    """The exercises pane reaches the UNet through the same entry point: with a refiner loaded, its
    grid is refined, and the key press validates each settings once on the way to the UNet."""
    from textual.widgets import Input, Select

    from tests.test_tui_support import SIZE, make_app, sync, wait_for

    checks = []
    real = SampleSettings._check
    monkeypatch.setattr(SampleSettings, "_check", lambda self, multiple: checks.append(multiple) or real(self, multiple))

    @sync
    async def run():
        app = make_app(tmp_path, model=str(folders[0]), refiner=str(folders[1]), refiner_at=0.5, steps=STEPS,
                       prompt=PROMPT)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.model is not None, what="base + refiner")
            pane = app.query_one("ExercisesPane")
            await pilot.press("f6")
            pane.query_one("#axis", Select).value = "negative"
            await pilot.pause()
            pane.query_one("#values", Input).value = "|blurry"
            pane.query_one("#steps", Input).value = str(STEPS)
            await pilot.pause()
            checks.clear()
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: pane.result is not None, what="refined exercise")
            # the form's check, then each cell's settings once (core.grid_axes.plan); the sampler trusts them
            assert len(checks) == 1 + 2
            result = pane.result
            assert result.refiner_name == "sdxl-refiner" and result.high_noise_frac == 0.5
            assert [r.negative_prompt for r in result.rows] == ["", "blurry"]

    run()


def test_tui_refiner_that_is_not_one_fails_to_load_with_one_line(folders, tmp_path):
    from tests.test_tui_support import SIZE, make_app, sync, wait_for

    @sync
    async def run():
        app = make_app(tmp_path, model=str(folders[0]), refiner=str(folders[0]))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "failed to load" in app.sub_title, what="load failure")
            assert any("not an SDXL refiner" in n.message for n in app.notices)

    run()


def test_grid_cells_through_the_refiner_equal_single_refined_runs(base, refiner):
    """A two-axis grid (seed x negative) hands every batch to the refiner; a cell is its single refined run."""
    from sd_explorer.core.grid_axes import Axis
    from sd_explorer.core.grid_run import run_grid

    settings = SampleSettings("a (collie:1.2) in a top hat", steps=STEPS, seed=0, guidance_scale=5.0)
    grid = run_grid(base, settings, Axis.parse("seed", "3,4"), Axis.parse("negative", "|blurry"), refiner=refiner,
                    handoff=0.5)
    assert grid.timings["batches"] == 1 and len(grid.images) == 4
    assert "Refiner switch at: 0.5" in grid.parameters(3) and 'X Type: Seed' in grid.grid_parameters()
    single = generate(base, SampleSettings("a (collie:1.2) in a top hat", negative_prompt="blurry", steps=STEPS,
                                           seed=4, guidance_scale=5.0), refiner=refiner, handoff=0.5)
    torch.testing.assert_close(grid.latents[3:4], single.latents, atol=1e-9, rtol=1e-9)
