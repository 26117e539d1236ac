"""Random init + save: deterministic, loadable as a pipeline, atomic, never silently overwriting."""

from __future__ import annotations

import json

import pytest
import torch

from sd_explorer.core.errors import UserError
from sd_explorer.core.tiny import build, configs


def test_random_init_is_deterministic_and_within_budget():
    a, b = build.build_components(seed=3), build.build_components(seed=3)
    for name in ("text_encoder", "vae", "unet"):
        for pa, pb in zip(getattr(a, name).parameters(), getattr(b, name).parameters()):
            assert torch.equal(pa, pb)
    counts = build.parameter_counts(a)
    assert 2 * sum(counts.values()) <= 25 * 1024 * 1024  # fp16 bytes
    assert a.text_encoder.config.vocab_size == 49408
    assert a.vae.config.latent_channels == 4 and len(a.vae.config.block_out_channels) == 4  # /8


def test_saved_folder_loads_as_a_pipeline_and_is_fp16(tmp_path):
    from diffusers import StableDiffusionPipeline

    from sd_explorer.core.clip_vocab import clip_tokenizer

    parts = build.build_components(seed=0, scaling_factor=0.5)
    out = build.save_folder(parts, tmp_path / "m")
    index = json.loads((out / "model_index.json").read_text())
    assert index == json.loads(json.dumps(configs.MODEL_INDEX))
    pipe = StableDiffusionPipeline.from_pretrained(str(out), tokenizer=clip_tokenizer(), torch_dtype=torch.float32)
    assert pipe.vae.config.scaling_factor == 0.5
    assert next(parts.unet.parameters()).dtype == torch.float32, "saving fp16 must not change the caller's model"
    from safetensors import safe_open

    with safe_open(str(out / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as st:
        assert st.get_tensor(next(iter(st.keys()))).dtype == torch.float16
    assert build.folder_bytes(out) < 25 * 1024 * 1024


def test_save_refuses_to_overwrite_unless_asked_and_replaces_atomically(tmp_path):
    parts = build.build_components(seed=0)
    out = build.save_folder(parts, tmp_path / "m", extra_files={})
    (out / "marker.txt").write_text("old")
    with pytest.raises(UserError, match="--overwrite"):
        build.save_folder(parts, out)
    note = tmp_path / "note.md"
    note.write_text("hello")
    build.save_folder(parts, out, overwrite=True, extra_files={"NOTE.md": note})
    assert not (out / "marker.txt").exists() and (out / "NOTE.md").read_text() == "hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "note.md"], "no staging folders left behind"


def test_cli_writes_a_folder_and_reports_bad_output(tmp_path, capsys):
    build.main(["--out", str(tmp_path / "cli"), "--seed", "1"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["bytes"] == build.folder_bytes(tmp_path / "cli")
    with pytest.raises(UserError):
        build.main(["--out", str(tmp_path / "cli")])
