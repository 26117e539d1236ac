"""Loading models as users have them, and refusing clearly what cannot be loaded."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sd_explorer.core.errors import UserError
from sd_explorer.core.model_folder import resolve_folder, resolve_tokenizer
from sd_explorer.core.models import load_model


def test_local_folder_loads_with_its_own_tokenizer(sd1_folder):
    model = load_model(str(sd1_folder), device="cpu")
    assert model.family == "sd1" and model.dtype == torch.float32 and model.device.type == "cpu"
    assert model.vae_scale_factor == 8 and model.default_size == (64, 64)
    assert model.prediction_type == "epsilon"
    assert model.tokenizer("A photograph of a puppy").input_ids == [49406, 320, 8853, 539, 320, 6829, 49407]


def test_folder_without_tokenizer_gets_clips_real_one(tmp_path):
    from tests.sd_factory import save_pipeline

    folder = save_pipeline(tmp_path / "m", "sd1", with_tokenizer=False)
    assert resolve_tokenizer(str(folder))("a puppy").input_ids == [49406, 320, 6829, 49407]


def test_tiny_is_the_shipped_folder():
    assert resolve_folder("tiny").name == "tiny-sd" and (resolve_folder("tiny") / "model_index.json").is_file()
    model = load_model("tiny", device="cpu")
    assert model.name == "tiny" and model.unet.config.in_channels == 4


def test_vae_swap(sd1_folder, tmp_path):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(sd1_folder / "vae")
    vae.register_to_config(scaling_factor=0.5)
    vae.save_pretrained(tmp_path / "other-vae")
    model = load_model(str(sd1_folder), device="cpu", vae=str(tmp_path / "other-vae"))
    assert model.vae.config.scaling_factor == 0.5


def test_hub_id_offline_not_cached_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="not in the Hugging Face cache"):
        load_model("stable-diffusion-v1-5/stable-diffusion-v1-5", device="cpu")


def test_hub_id_from_a_warm_cache(monkeypatch, tmp_path, sd1_folder):
    """A Hub id resolves from the local cache with HF_HUB_OFFLINE=1 (a cache laid out as the Hub does)."""
    repo = tmp_path / "models--someone--tiny-sd"
    snap = repo / "snapshots" / ("0" * 40)
    shutil.copytree(sd1_folder, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path), raising=False)
    model = load_model("someone/tiny-sd", device="cpu")
    assert model.family == "sd1" and model.folder.resolve() == snap.resolve()


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "model_index.json").unlink(), "no model_index.json"),
    (lambda f: shutil.rmtree(f / "unet"), "no unet/"),
    (lambda f: [p.unlink() for p in (f / "vae").glob("*.safetensors")], "no weights"),
    (lambda f: [p.rename(p.with_suffix(".bin")) for p in (f / "unet").glob("*.safetensors")], "pickle"),
    (lambda f: [p.write_bytes(p.read_bytes()[:1000]) for p in (f / "unet").glob("*.safetensors")], "damaged"),
    (lambda f: (f / "model_index.json").write_text("{not json"), "not valid JSON"),
])
def test_damaged_folders(sd1_folder, tmp_path, damage, message):
    folder = _copy(sd1_folder, tmp_path / "m")
    damage(folder)
    with pytest.raises(UserError, match=message) as info:
        load_model(str(folder), device="cpu")
    assert "\n" not in str(info.value)


def test_unet_only_folder_and_unsupported_families(sd1_folder, tmp_path):
    with pytest.raises(UserError, match="single model"):
        load_model(str(sd1_folder / "unet"), device="cpu")
    folder = _copy(sd1_folder, tmp_path / "xl")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusion3Pipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="SD3"):
        load_model(str(folder), device="cpu")


@pytest.mark.parametrize("spec, message", [("/no/such/folder", "no such folder"), ("not a model!", "no such folder")])
def test_bad_specs(spec, message):
    with pytest.raises(UserError, match=message):
        load_model(spec, device="cpu")


def test_device_and_dtype_choices():
    from sd_explorer.core.devices import pick_device, pick_dtype

    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cuda")) == torch.float16
    assert pick_dtype(torch.device("cuda"), "bf16") == torch.bfloat16
    with pytest.raises(UserError, match="fp32"):
        pick_dtype(torch.device("cpu"), "fp16")
    with pytest.raises(UserError):
        pick_device("warp")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            pick_device("cuda")
