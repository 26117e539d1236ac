"""``core.cost``: a run's multiply-adds from the configs, and the line a CPU user reads before minutes of work."""

from __future__ import annotations

import json

import pytest

from sd_explorer.core import cost
from sd_explorer.core.settings import SampleSettings
from tests.conftest import ROOT
from tests.test_hostile_input import run_cli

TINY_UNET = json.loads((ROOT / "assets/tiny-sd/unet/config.json").read_text())
TINY_VAE = json.loads((ROOT / "assets/tiny-sd/vae/config.json").read_text())


def test_convolutions_grow_with_the_pixels_and_attention_faster():
    convs = dict(TINY_UNET, down_block_types=["DownBlock2D"] * 3)
    assert cost.unet_macs(convs, 64, 64, 1) == pytest.approx(4 * cost.unet_macs(convs, 32, 32, 1), rel=0.02)
    ratio = cost.unet_macs(TINY_UNET, 512, 512, 1) / cost.unet_macs(TINY_UNET, 256, 256, 1)
    assert ratio > 8  # self-attention over 4x the positions costs 16x: 4096x4096 is no 4x of 2048x2048
    assert cost.unet_macs(TINY_UNET, 64, 64, 3) == pytest.approx(3 * cost.unet_macs(TINY_UNET, 64, 64, 1))
    assert cost.vae_decode_macs(TINY_VAE, 64, 64, 1) > 4 * cost.vae_decode_macs(TINY_VAE, 32, 32, 1) * 0.99


def test_an_estimate_says_how_long_and_what_to_change():
    est = cost.estimate(TINY_UNET, TINY_VAE, 512, 512, 2, 30, 1, macs_per_s=2e9)
    assert est.worth_saying and est.seconds > 3600
    line = est.line("CPU")
    assert line.startswith("about ") and " h on this CPU (30 steps x 2 UNet rows at 512x512 latents)" in line
    assert "--size" in line and "--steps" in line and "ctrl+c" in line
    assert [cost.duration(s) for s in (45, 720, 3 * 3600)] == ["45 s", "12 min", "3.0 h"]
    with pytest.raises(ValueError):
        cost.estimate(TINY_UNET, TINY_VAE, 8, 8, 1, 1, 1, macs_per_s=float("nan"))


def test_before_a_run_on_tiny(monkeypatch):
    """The default run is not even timed; 4096x4096 on this CPU is hours, said before it starts."""
    from sd_explorer.core.models import load_model

    tiny = load_model("tiny", device="cpu")
    timed = []
    real = cost.calibrate
    monkeypatch.setattr(cost, "calibrate", lambda model: timed.append(1) or real(model))
    assert cost.before_run(tiny, SampleSettings("a boot", steps=30), 4, True) is None and timed == []
    est = cost.before_run(tiny, SampleSettings("a boot", steps=30, width=4096, height=4096), 1, True)
    assert timed == [1] and est is not None and est.seconds > 3600, est
    rate = real(tiny)
    assert 1e7 < rate < 1e13  # multiply-adds a second: a CPU's, not a unit slip


def test_the_cli_says_it_before_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cost, "CHEAP_MACS", 0)
    monkeypatch.setattr(cost, "calibrate", lambda model: 1e6)  # a very slow machine
    code, lines = run_cli(["generate", "a photo of an ankle boot", "--steps", "1", "--size", "128x128",
                           "--device", "cpu", "--out", str(tmp_path)], capsys)
    assert code == 0, lines
    said = [ln for ln in lines if "on this CPU" in ln]
    assert len(said) == 1 and said[0].startswith("sd-explorer: about ") and "1 step x 2 UNet rows at 16x16" in said[0]
    assert list(tmp_path.glob("*.png"))  # it still ran: the line informs, it does not refuse
