"""Issue 7's cases that no feature test already covers: odd prompts, numeric fuzzing, full disks, two
processes in one folder, a killed training run, no network offline, no code from model folders."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from sd_explorer.core.inputs import parse_scales, parse_size
from sd_explorer.core.errors import UserError
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate
from tests.conftest import ROOT


@pytest.mark.parametrize("prompt", [
    "x" * 10_000, "🐶 一只戴着礼帽的柯基 кот 猫 ٱلْقِطّ", "a\x00b\x07c\td\r\ne\x1b[31m", "   \n\t ", "",
])
def test_odd_prompts_run_and_report(sd1, prompt):
    from sd_explorer.core.tokens import breakdown

    b = breakdown(sd1.tokenizer, prompt)
    assert len(b.input_ids) == 77 * b.chunks and b.chunks <= 8 and len(b.kept) <= 75 * b.chunks
    result = generate(sd1, SampleSettings(prompt, steps=1))
    assert result.images[0].size == (64, 64)
    if len(prompt) == 10_000:
        assert result.dropped_tokens and b.chunks == 8  # past 8 chunks (600 tokens): reported, not an error


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_size_and_scale_parsing_never_crash(text):
    for parse in (parse_size, parse_scales):
        try:
            parse(text)
        except UserError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(steps=st.one_of(st.integers(), st.floats(), st.booleans()),
       guidance=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6)),
       seed=st.integers(min_value=-(2**70), max_value=2**70),
       width=st.one_of(st.none(), st.integers(-100, 10_000)))
def test_settings_validation_accepts_or_explains(steps, guidance, seed, width):
    s = SampleSettings("x", steps=steps, guidance_scale=guidance, seed=seed, width=width)
    try:
        s.validate()
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert 1 <= s.steps <= 1000 and 0 <= s.seed <= 2**64 - 1 and 0 <= s.guidance_scale <= 100
        assert width is None or (width % 8 == 0 and 8 <= width <= 4096)


def test_disk_full_leaves_nothing_behind(tmp_path, monkeypatch):
    from sd_explorer.core.outputs import save_png

    def full(self, fp, *args, **kwargs):
        with open(fp, "wb") as handle:
            handle.write(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(UserError, match="free some space"):
        save_png(Image.new("RGB", (4, 4)), tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


def test_two_processes_in_one_output_folder(tmp_path):
    code = ("import sys; from PIL import Image; from sd_explorer.core.outputs import save_png\n"
            "for i in range(15): print(save_png(Image.new('RGB', (4, 4), (int(sys.argv[1]), i, 0)), sys.argv[2], 'same'))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k), str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True) for k in (1, 2)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    written = outs[0] + outs[1]
    assert len(set(written)) == 30 and len(list(tmp_path.glob("same-*.png"))) == 30
    for k, paths in zip((1, 2), outs):
        assert all(Image.open(p).getpixel((0, 0))[0] == k for p in paths)


def test_killed_training_loses_at_most_an_epoch_and_resumes(tmp_path, fashion_dir):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sd_explorer.core", "fashion", "train", "--data", str(fashion_dir), "--tiny", "--limit", "256",
           "--batch-size", "64", "--epochs", "40", "--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list(out.glob("ckpt-*.safetensors"))) < 2:
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
        proc.wait(timeout=30)
    finally:
        proc.kill()
    ckpts = sorted(out.glob("ckpt-*.safetensors"))
    assert len(ckpts) >= 2 and not list(out.glob("*.tmp*")) and not list(out.glob(".tmp*"))
    resumed = subprocess.run(cmd[:-8] + ["--batch-size", "64", "--epochs", str(len(ckpts) + 1), "--device", "cpu",
                                          "--limit", "256", "--resume", str(ckpts[-1]), "--out", str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert len(sorted(out.glob("ckpt-*.safetensors"))) > len(ckpts)


def test_offline_means_no_connection_attempt(monkeypatch, tmp_path):
    from sd_explorer.core.models import load_model

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network used while offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="not in the Hugging Face cache"):
        load_model("stable-diffusion-v1-5/stable-diffusion-v1-5", device="cpu")
    assert attempts == []


def test_offline_flag_sets_hf_hub_offline(monkeypatch):
    from sd_explorer.core.cli import main

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert main(["--offline", "tokens", "a cat"]) == 0
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_no_code_runs_from_a_model_folder(sd1_folder, tmp_path):
    """A folder asking for a custom pipeline class is refused; its Python file never runs."""
    import shutil

    folder = tmp_path / "evil"
    shutil.copytree(sd1_folder, folder)
    marker = tmp_path / "ran"
    (folder / "pipeline.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = ["pipeline", "EvilPipeline"]
    (folder / "model_index.json").write_text(json.dumps(index))
    from sd_explorer.core.models import load_model

    with pytest.raises(UserError):
        load_model(str(folder), device="cpu")
    assert not marker.exists()
