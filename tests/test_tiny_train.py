"""The training recipe end to end on a few synthetic images (mechanics, not quality)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sd_explorer.core.errors import UserError
from sd_explorer.core.tiny import train
from tests.test_tiny_data import write_idx


@pytest.fixture
def data_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = np.zeros((24, 28, 28), np.uint8)
    for i in range(24):  # a bright box per image, so the data is not pure noise
        r, c = rng.integers(2, 14, 2)
        images[i, r:r + 12, c:c + 10] = 200
    write_idx(tmp_path / "data", images, np.arange(24) % 10)
    return tmp_path / "data"


def test_recipe_runs_and_saves_a_loadable_folder(tmp_path, data_dir, capsys):
    out = tmp_path / "model"
    train.main(["--data", str(data_dir), "--out", str(out), "--device", "cpu", "--held-out", "8",
                "--vae-steps", "2", "--vae-batch", "4", "--unet-steps", "3", "--unet-batch", "4", "--unet-stop-at", "0", "--vae-stop-at", "0",
                "--unet-seconds", "1000"])
    record = json.loads((out / "training.json").read_text())
    assert record["steps_done"] == {"vae": 2, "unet": 3}
    assert record["train_images"] == 16 and record["held_out"] == 8
    assert [e["stage"] for e in record["log"]] == ["vae", "vae", "unet", "unet"]
    assert record["settings"]["unet_steps"] == "3"
    from sd_explorer.core.models import load_model

    model = load_model(str(out), device="cpu")
    assert model.vae.config.scaling_factor == pytest.approx(record["scaling_factor"])
    with pytest.raises(UserError, match="--overwrite"):
        train.main(["--data", str(data_dir), "--out", str(out), "--device", "cpu"])
    with pytest.raises(UserError, match="--held-out"):
        train.main(["--data", str(data_dir), "--out", str(tmp_path / "other"), "--device", "cpu"])


def test_time_cap_stops_early_and_is_recorded():
    log: list = []
    from sd_explorer.core.tiny.build import build_components

    parts = build_components(0)
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    done = train.train_vae(parts.vae, images, steps=50, batch=2, lr=1e-3, kl_weight=1e-6, log=log, seconds=0)
    assert done == 1 and log[-1]["step"] == 0


def test_ema_moves_toward_the_weights():
    net = torch.nn.Linear(2, 2)
    ema = train.EMA([net], decay=0.5)
    before = [s.clone() for s in ema.shadow]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(step=1000)
    for b, s, p in zip(before, ema.shadow, net.parameters()):
        assert torch.allclose(s, (b + p) / 2)
    ema.copy_to_params()
    assert all(torch.equal(s, p) for s, p in zip(ema.shadow, net.parameters()))


def test_stop_at_ends_the_run_at_that_step(tmp_path, data_dir):
    out = tmp_path / "stopped"
    train.main(["--data", str(data_dir), "--out", str(out), "--device", "cpu", "--held-out", "8",
                "--vae-steps", "10", "--vae-stop-at", "1", "--vae-batch", "2",
                "--unet-steps", "10", "--unet-stop-at", "2", "--unet-batch", "2"])
    assert json.loads((out / "training.json").read_text())["steps_done"] == {"vae": 1, "unet": 2}


def test_defaults_are_the_shipped_recipe():
    from sd_explorer.core.tiny import ASSET_DIR

    record = json.loads((ASSET_DIR / "training.json").read_text())
    shipped = record
    while "continued_from" in shipped:  # the shipped model continued an earlier run: the defaults made that one
        assert shipped["settings"]["init"] == "assets/tiny-sd" and shipped["steps_done"]["vae"] == 0
        shipped = shipped["continued_from"]
    defaults = vars(train.parser().parse_args(["--data", "d", "--out", "o"]))
    for key in ("vae_steps", "vae_batch", "vae_lr", "kl_weight", "unet_steps", "unet_batch", "unet_lr",
                "ema", "empty_p", "seed", "held_out"):
        assert str(defaults[key]) == shipped["settings"][key], key
    assert defaults["vae_stop_at"] == shipped["steps_done"]["vae"]
    assert defaults["unet_stop_at"] == shipped["steps_done"]["unet"]
