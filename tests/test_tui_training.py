"""Pilot tests of the training pane's first hour: data field, honest status, the run's own samples, CPU defaults."""

from __future__ import annotations

import time
import tomllib

import numpy as np
import pytest
from textual.widgets import Input, Label, Select

from tests.test_tui_support import SIZE, make_app, sync, wait_for


def label_text(app, selector: str) -> str:
    return str(app.query_one(selector, Label).render())


@sync
async def test_without_data_it_fails_in_seconds_and_says_how(tmp_path, monkeypatch):
    """Offline with no cached dataset: the noising row and ctrl+r both say how to point at IDX/parquet files."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("SD_EXPLORER_FASHION_DATA", raising=False)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: not app.model_worker.busy("load"), what="model")
        pane = app.query_one("TrainingPane")
        pane.sample_steps = 2
        await pilot.press("f5")
        assert app.query_one("#data-label", Label).visible and app.query_one("#data", Input).value == ""
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-noise"), timeout=30, what="noising row")
        assert "no data" in app.query_one("#noising").caption
        assert any("train-images-idx3-ubyte" in n.message and ".parquet" in n.message for n in app._notifications)
        await pilot.press("ctrl+r")  # cancels the shipped preview, then fails at once
        await wait_for(pilot, lambda: not app.model_worker.busy("train"), timeout=60, what="training failure")
        assert "failed" in label_text(app, "#state")
        failed = [n.message for n in app._notifications if n.title == "train failed"]
        assert failed and "HF_HUB_OFFLINE" in failed[0]
        assert "train-labels-idx1-ubyte" in failed[0]
        assert pane.losses == []


def test_offline_or_unreachable_hub_fails_in_seconds(tmp_path, monkeypatch):
    """No data source and no cached dataset: a one-line error naming the files to use, within seconds."""
    import core.hub
    from core.errors import UserError
    from core.fashion.data import load_fashion_mnist

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("SD_EXPLORER_FASHION_DATA", raising=False)
    start = time.monotonic()
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set: point --data"):
        load_fashion_mnist(None)
    assert time.monotonic() - start < 2
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    probes = []
    monkeypatch.setattr(core.hub, "reachable", lambda timeout=3.0: probes.append(timeout) or False)
    with pytest.raises(UserError, match=r"cannot be reached \(no network\).*train-images-idx3-ubyte.*\.parquet"):
        load_fashion_mnist(None)
    assert probes == [3.0]
    with pytest.raises(UserError, match="is not a folder of IDX files or a .parquet file"):
        load_fashion_mnist(__file__)


@sync
async def test_training_jumps_ahead_of_the_preview_and_samples_its_own_model(tmp_path, fashion_dir):
    """ctrl+r cancels the shipped-model preview; after a stop, ctrl+g samples the run's weights, not the shipped."""
    import core.fashion as fm
    from core.fashion.monitor import score_model
    from tui.panes.train_views import sample_grid

    config = tmp_path / "config.toml"
    config.write_text('theme = "textual-dark"\n')
    app = make_app(tmp_path, config_file=str(config))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("TrainingPane")
        pane.sample_steps = 5
        await pilot.press("f5")
        assert app.model_worker.busy("fashion-show")  # the shipped model's preview runs first...
        assert "sampling the shipped model" in label_text(app, "#state")  # ...and the status says so
        app.query_one("#data", Input).value = str(fashion_dir)
        app.query_one("#epochs", Input).value = "1"
        app.query_one("#batch", Input).value = "16"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-show"), timeout=30, what="preview cancelled")
        assert app.query_one("#samples").image is None  # cancelled: no shipped grid under a training label
        await wait_for(pilot, lambda: len(pane.losses) >= 1, timeout=120, what="a loss update")
        assert label_text(app, "#state").startswith("training on cpu")
        # the data source that worked is remembered in the settings file, other lines kept
        saved = tomllib.loads(config.read_text())
        assert saved == {"theme": "textual-dark", "data": str(fashion_dir)}
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.model_worker.busy("train"), timeout=60, what="stop")
        ckpt = app.query_one("#ckpt", Input).value
        assert ckpt and "ctrl+g samples it" in label_text(app, "#state")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.query_one("#samples").image is not None, timeout=120, what="samples")
        samples = app.query_one("#samples")
        assert samples.caption.startswith("training run (stopped)")
        shown = np.asarray(samples.image)
        from_ckpt = np.asarray(sample_grid(score_model(fm.load_model(ckpt, device="cpu"), 2, 5)))
        shipped = np.asarray(sample_grid(score_model(fm.load_shipped(device="cpu"), 2, 5)))
        assert np.array_equal(shown, from_ckpt), "the grid must come from the run's weights"
        assert not np.array_equal(shown, shipped)


@sync
async def test_cpu_defaults_to_the_small_unet_and_says_why(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        assert app.query_one("#arch", Select).value == "tiny"
        assert "CPU: small UNet" in label_text(app, "#why")
        app.query_one("#arch", Select).value = "chapter"
        await pilot.pause()
        assert "takes hours here" in label_text(app, "#why")
        # the shipped recipe is one key away, and on a CPU it says it is a GPU recipe
        await pilot.press("ctrl+t")
        pane = app.query_one("TrainingPane")
        config = pane.train_config()
        assert (config.epochs, config.batch_size, config.lr, config.ema_decay) == (400, 256, 3e-4, 0.999)
        assert config.model.block_out_channels == (32, 64, 128, 256)
        assert any("GPU recipe" in n.message for n in app._notifications)


def test_prune_keeps_the_newest_checkpoints(tmp_path):
    from core.fashion.checkpoint import prune

    paths = []
    for i in range(5):
        path = tmp_path / f"ckpt-{i}.safetensors"
        path.write_bytes(b"x")
        paths.append(str(path))
    removed = prune(paths, 2)
    assert removed == [str(tmp_path / f"ckpt-{i}.safetensors") for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-3.safetensors", "ckpt-4.safetensors"]
    assert prune(paths, 0) == [] and len(paths) == 2


def test_remember_writes_one_line_atomically(tmp_path):
    from tui.config import read_config, remember

    path = tmp_path / "sub" / "config.toml"
    remember("data", "/a/b", path)
    remember("data", 'C:\\x "y"', path)
    assert read_config(path) == {"data": 'C:\\x "y"'}
    assert path.read_text().count("data =") == 1
    with pytest.raises(Exception):
        remember("nonsense", "1", path)
