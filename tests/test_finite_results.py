"""Issue 26, class 1: a result that is not finite is never published (exit 2, one line naming the cause,
no file), and class 2: files validated against what the code will do with them (ranges as well as types).

The CLI is run in this process (``tests.test_hostile_input.run_cli``); the properties generate weights,
scheduler configs, prompt weights and nestings beyond the named examples.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from sd_explorer.core.model_folder import TINY
from tests.test_hostile_input import FAST, assert_clean, assert_refused, edit_json, generate, run_cli


@pytest.fixture
def tiny_copy(tmp_path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("*.png", "MODEL_CARD.md"))
    return folder


def rewrite_weights(path: Path, change) -> None:
    """``change(name, tensor) -> tensor`` applied to every tensor of a safetensors file."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    save_file({k: change(k, v).contiguous() for k, v in tensors.items()}, str(path))


def nan_all(name, t):
    import torch

    return torch.full_like(t, float("nan")) if t.is_floating_point() else t


# -- the named instances ---------------------------------------------------------------------------

@pytest.mark.parametrize("damage, match", [
    (lambda f: rewrite_weights(f / "unet" / "diffusion_pytorch_model.safetensors", nan_all), "NaN or inf"),
    (lambda f: rewrite_weights(f / "text_encoder" / "model.safetensors", nan_all), "text_encoder"),
    (lambda f: rewrite_weights(f / "vae" / "diffusion_pytorch_model.safetensors", nan_all), "vae"),
    (lambda f: rewrite_weights(f / "unet" / "diffusion_pytorch_model.safetensors", lambda k, t: t > 0),
     "not floating point"),
    (lambda f: edit_json(f / "scheduler" / "scheduler_config.json", lambda d: d.update(beta_start=0.5, beta_end=2.0)),
     "must lie between 0 and 1"),
    (lambda f: edit_json(f / "vae" / "config.json", lambda d: d.update(scaling_factor=1e-30)), "scaling_factor"),
    (lambda f: edit_json(f / "scheduler" / "scheduler_config.json", lambda d: d.update(prediction_type="nope")),
     "prediction_type"),
    (lambda f: edit_json(f / "scheduler" / "scheduler_config.json", lambda d: d.update(timestep_spacing="bogus")),
     "timestep_spacing"),
    (lambda f: edit_json(f / "model_index.json", lambda d: d.update(scheduler=["diffusers", "ScoreSdeVeScheduler"])),
     "cannot sample with ScoreSdeVeScheduler"),
    (lambda f: edit_json(f / "model_index.json", lambda d: d.update(scheduler=["diffusers", "IPNDMScheduler"])),
     "DDIMScheduler"),
    (lambda f: edit_json(f / "model_index.json",
                         lambda d: d.update(scheduler=["diffusers", "FlowMatchEulerDiscreteScheduler"])), "cannot sample"),
    (lambda f: (f / "unet" / "config.json").write_text('{"a": ' * 100_000 + "1" + "}" * 100_000), "nested more than"),
    (lambda f: (f / "model_index.json").write_text("[" * 100_000 + "]" * 100_000), "nested more than"),
])
def test_broken_models_are_refused_before_an_image(tiny_copy, tmp_path, capsys, damage, match):
    damage(tiny_copy)
    code, lines = generate(tiny_copy, tmp_path / "out", capsys)
    assert_refused(code, lines, tmp_path / "out", match)


@pytest.mark.parametrize("prompt", ["a (boot:" + "9" * 310 + ")", "a " + "(" * 1000 + "boot" + ")" * 1000,
                                    "(boot:-50)", "(boot:10.5)", "a (boot:1e308)", "(boot:nan)"])
def test_prompt_weights_outside_the_sane_range_are_refused(tmp_path, capsys, prompt):
    code, lines = run_cli(["generate", prompt, "--steps", "1", "--device", "cpu", "--out", str(tmp_path / "o")], capsys)
    if code == 0:  # A1111's grammar reads "1e308" and "nan" as text (weight x1.1): a finite image, written
        assert "e308" in prompt or "nan" in prompt
        return
    assert_refused(code, lines, tmp_path / "o", "outside -10 to 10")


def test_colour_scale_is_bounded(tmp_path, capsys):
    code, lines = run_cli(["generate", "a boot", "--steps", "1", "--device", "cpu", "--color", "#ff0000",
                           "--color-scale", "1e308", "--out", str(tmp_path / "o")], capsys)
    assert_refused(code, lines, tmp_path / "o", "from 0 to 10000")


def test_a_nan_result_is_never_written(tmp_path, capsys, monkeypatch):
    """Whatever the cause, the sampler's check stops a NaN image at the source (here: the UNet made to overflow
    after loading, past the load-time checks)."""
    import torch

    from sd_explorer.core import models

    real = models.load_model

    def poisoned(*a, **k):
        model = real(*a, **k)
        with torch.no_grad():
            next(model.unet.parameters()).fill_(float("inf"))
        return model

    monkeypatch.setattr(models, "load_model", poisoned)
    code, lines = run_cli(["generate", "a boot", "--steps", "1", "--device", "cpu", "--out", str(tmp_path / "o")], capsys)
    assert_refused(code, lines, tmp_path / "o", "came out NaN or infinite, so nothing was written")
    assert "unet weights" in lines[0]


def test_the_diagnosis_names_the_cause():
    from types import SimpleNamespace

    from sd_explorer.core.finite import diagnose
    from sd_explorer.core.settings import SampleSettings

    s = SampleSettings(prompt="a " + "(" * 60 + "boot" + ")" * 60)
    assert "prompt weight" in diagnose(None, s)
    assert "guidance scale 90" in diagnose(None, SampleSettings(prompt="x", guidance_scale=90))
    assert "fp32" in diagnose(SimpleNamespace(dtype="torch.float16"), SampleSettings(prompt="x"))


# -- properties ------------------------------------------------------------------------------------

@FAST
@given(start=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)),
       end=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)),
       scaling=st.one_of(st.floats(allow_nan=False), st.just(0.18215)),
       prediction=st.sampled_from(["epsilon", "v_prediction", "sample", "nope", "", "EPSILON"]))
def test_scheduler_and_vae_numbers_never_publish_a_broken_image(tmp_path_factory, capsys, start, end, scaling,
                                                                prediction):
    folder = tmp_path_factory.mktemp("m") / "tiny"
    shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("*.png", "MODEL_CARD.md"))
    edit_json(folder / "scheduler" / "scheduler_config.json",
              lambda d: d.update(beta_start=start, beta_end=end, prediction_type=prediction))
    edit_json(folder / "vae" / "config.json", lambda d: d.update(scaling_factor=scaling))
    out = folder.parent / "out"
    code, lines = generate(folder, out, capsys)
    assert_clean(code, lines, out)
    if code == 0:  # what was written is a real image: not all one value
        from PIL import Image

        for png in out.glob("*.png"):
            lo, hi = Image.open(png).convert("L").getextrema()
            assert hi > lo, f"a blank image was published ({start}, {end}, {scaling})"


@FAST
@given(depth=st.integers(1, 20), factor=st.one_of(st.floats(allow_nan=False), st.integers(-10**6, 10**6)),
       bracket=st.sampled_from(["(", "["]))
def test_any_prompt_weight_is_refused_or_finite(depth, factor, bracket):
    from sd_explorer.core.errors import UserError
    from sd_explorer.core.prompt_weights import MAX_WEIGHT, check_weights, parse

    close = ")" if bracket == "(" else "]"
    prompt = bracket * depth + f"boot:{factor!r}" + close * depth
    weights = [f.weight for f in parse(prompt).fragments if not f.is_break]
    try:
        check_weights(prompt)
    except UserError as exc:
        assert "outside -10 to 10" in str(exc)
        assert any(not math.isfinite(w) or abs(w) > MAX_WEIGHT for w in weights)
    else:
        assert all(math.isfinite(w) and abs(w) <= MAX_WEIGHT for w in weights)


@FAST
@given(depth=st.integers(65, 5000), opener=st.sampled_from(["[", '{"a":']))
def test_json_of_any_depth_is_one_line(tmp_path_factory, depth, opener):
    from sd_explorer.core.errors import UserError
    from sd_explorer.core.schema import read_json_file

    path = tmp_path_factory.mktemp("j") / "x.json"
    close = "]" if opener == "[" else "}"
    path.write_text(opener * depth + "1" + close * depth)
    with pytest.raises(UserError, match="nested more than 64 levels"):
        read_json_file(path, "fix it")


# -- Fashion: samples, weights, training ------------------------------------------------------------

@pytest.fixture(scope="module")
def fashion_weights(tmp_path_factory) -> Path:
    import torch

    from sd_explorer.core.fashion.model import ModelConfig, build_unet, save_weights

    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    return save_weights(build_unet(cfg), cfg, tmp_path_factory.mktemp("fw") / "tiny.safetensors")


def fashion_sample(ckpt: Path, out: Path, capsys, *extra: str):
    return run_cli(["fashion", "sample", "--checkpoint", str(ckpt), "-n", "1", "--steps", "2", "--device", "cpu",
                    "--out", str(out), *extra], capsys)


def test_nan_fashion_weights_are_refused(fashion_weights, tmp_path, capsys):
    bad = tmp_path / "nan.safetensors"
    shutil.copy(fashion_weights, bad)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(bad), framework="pt") as fh:
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    save_file({k: nan_all(k, v) for k, v in tensors.items()}, str(bad), metadata=meta)
    code, lines = fashion_sample(bad, tmp_path / "out", capsys)
    assert_refused(code, lines, tmp_path / "out", "NaN, inf or true/false")


@pytest.mark.parametrize("extra, match", [({"attention_head_dim": 0}, "whole number from 1"),
                                          ({"time_embedding_type": "nope"}, "must be one of positional"),
                                          ({"dropout": 3}, "below 1"),
                                          ({"norm_eps": None}, "cannot be null"),  # found by the property test below
                                          ({"freq_shift": None}, "cannot be null")])
def test_fashion_extra_ranges(fashion_weights, tmp_path, capsys, extra, match):
    from sd_explorer.core.fashion.model import ModelConfig
    from tests.test_hostile_input import with_config

    raw = json.loads(ModelConfig.tiny().to_json())
    raw["extra"] = extra
    ckpt = with_config(fashion_weights, tmp_path / "m.safetensors", json.dumps(raw))
    assert_refused(*fashion_sample(ckpt, tmp_path / "out", capsys), tmp_path / "out", match)


@FAST
@given(key=st.sampled_from(["attention_head_dim", "time_embedding_type", "norm_eps", "dropout", "act_fn",
                            "resnet_time_scale_shift", "time_embedding_dim", "freq_shift", "add_attention"]),
       value=st.one_of(st.integers(-3, 3), st.floats(-2, 2), st.sampled_from(["nope", "fourier", "silu", ""]),
                       st.booleans(), st.none()))
def test_fashion_extra_never_crashes(fashion_weights, tmp_path_factory, capsys, key, value):
    from sd_explorer.core.fashion.model import ModelConfig
    from tests.test_hostile_input import with_config

    raw = json.loads(ModelConfig.tiny().to_json())
    raw["extra"] = {key: value}
    folder = tmp_path_factory.mktemp("ex")
    ckpt = with_config(fashion_weights, folder / "m.safetensors", json.dumps(raw))
    assert_clean(*fashion_sample(ckpt, folder / "out", capsys), folder / "out")
