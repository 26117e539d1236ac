"""Pilot tests of the training pane's first hour: data field, honest status, the run's own samples, CPU defaults."""

from __future__ import annotations

import time
import tomllib

import numpy as np
import pytest
from textual.widgets import Input, Label, Select

from tests.test_tui_support import SIZE, make_app, sync, wait_for
from sd_explorer.tui.progress import StepPreview


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
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-noise"), what="noising row")
        assert "no data" in app.query_one("#noising").caption
        assert any("train-images-idx3-ubyte" in n.message and ".parquet" in n.message for n in app.notices)
        await pilot.press("ctrl+r")  # cancels the shipped preview, then fails at once
        await wait_for(pilot, lambda: not app.model_worker.busy("train"), what="training failure")
        assert "failed" in label_text(app, "#state")
        failed = [n.message for n in app.notices if n.title == "train failed"]
        assert failed and "HF_HUB_OFFLINE" in failed[0]
        assert "train-labels-idx1-ubyte" in failed[0]
        assert pane.losses == []


def test_offline_or_unreachable_hub_fails_in_seconds(tmp_path, monkeypatch):
    """No data source and no cached dataset: a one-line error naming the files to use, within seconds."""
    import sd_explorer.core.hub
    from sd_explorer import core
    from sd_explorer.core.errors import UserError
    from sd_explorer.core.fashion.data import load_fashion_mnist

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
    import sd_explorer.core.fashion as fm
    from sd_explorer.core.fashion.monitor import score_model
    from sd_explorer.tui.panes.train_views import sample_grid

    config = tmp_path / "config.toml"
    config.write_text('theme = "textual-dark"\n')
    app = make_app(tmp_path, config_file=str(config))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("TrainingPane")
        # a preview long enough (400 DDIM steps of the chapter's UNet: many seconds on any CPU) that ctrl+r
        # always finds it running; a 5-step one can finish first on a quiet machine, and then nothing is cancelled
        pane.sample_steps = 400
        await pilot.press("f5")
        assert app.model_worker.busy("fashion-show")  # the shipped model's preview runs first...
        assert "sampling: shipped model" in label_text(app, "#state")  # ...and the status says so
        app.query_one("#data", Input).value = str(fashion_dir)
        app.query_one("#epochs", Input).value = "1"
        app.query_one("#batch", Input).value = "16"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-show"), what="preview cancelled")
        assert app.query_one("#samples").image is None  # cancelled: no shipped grid under a training label
        pane.sample_steps = 5  # the run's own samples below: 5 steps, as the comparison draws them
        await wait_for(pilot, lambda: len(pane.losses) >= 1, what="a loss update")
        assert label_text(app, "#state").startswith("training on cpu")
        # the data source that worked is remembered in the settings file, other lines kept
        saved = tomllib.loads(config.read_text())
        assert saved == {"theme": "textual-dark", "data": str(fashion_dir)}
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.model_worker.busy("train"), what="stop")
        ckpt = app.query_one("#ckpt", Input).value
        assert ckpt and "ctrl+g samples it" in label_text(app, "#state")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.query_one("#samples").image is not None, what="samples")
        samples = app.query_one("#samples")
        assert samples.caption.startswith("training run (stopped)")
        shown = np.asarray(samples.image)
        from_ckpt = np.asarray(sample_grid(score_model(fm.load_weights(ckpt, device="cpu"), 2, 5)))
        shipped = np.asarray(sample_grid(score_model(fm.load_shipped(device="cpu"), 2, 5)))
        assert np.array_equal(shown, from_ckpt), "the grid must come from the run's weights"
        assert not np.array_equal(shown, shipped)


@sync
async def test_cpu_defaults_to_the_cpu_recipe_and_says_what_to_expect(tmp_path):
    from sd_explorer.core.fashion.recipes import CPU

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        assert app.query_one("#arch", Select).value == "small"
        assert label_text(app, "#why") == CPU.expect
        pane = app.query_one("TrainingPane")
        config = pane.train_config()  # what ctrl+r would train: the CPU recipe, all of it
        assert (config.epochs, config.batch_size, config.lr, config.ema_decay) == (
            CPU.epochs, CPU.batch_size, CPU.lr, CPU.ema_decay)
        assert config.model.block_out_channels == (16, 32, 64, 64) and config.model.layers_per_block == 1
        app.query_one("#arch", Select).value = "chapter"
        await pilot.pause()
        assert "takes hours here" in label_text(app, "#why")
        # the shipped recipe is one key away, and on a CPU it says it is a GPU recipe
        await pilot.press("ctrl+t")
        config = pane.train_config()
        assert (config.epochs, config.batch_size, config.lr, config.ema_decay) == (400, 256, 3e-4, 0.999)
        assert config.model.block_out_channels == (32, 64, 128, 256)
        assert any("GPU recipe" in n.message for n in app.notices)


def test_prune_keeps_the_newest_checkpoints(tmp_path):
    from sd_explorer.core.fashion.checkpoint import prune

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
    from sd_explorer.tui.config import read_config, remember

    path = tmp_path / "sub" / "config.toml"
    remember("data", "/a/b", path)
    remember("data", 'C:\\x "y"', path)
    assert read_config(path) == {"data": 'C:\\x "y"'}
    assert path.read_text().count("data =") == 1
    with pytest.raises(Exception):
        remember("nonsense", "1", path)


def test_score_model_measures_class_fidelity(fashion_dir, monkeypatch):
    """The monitor's measurement: real images of the asked classes score high, the same images mislabelled ~0."""
    import torch

    import sd_explorer.core.fashion.monitor as monitor
    from sd_explorer.core.fashion.data import load_fashion_mnist

    data = load_fashion_mnist(fashion_dir).subset(-1024)
    per_class = 6
    picks = torch.cat([torch.nonzero(data.labels == c)[:per_class, 0] for c in range(10)])
    real = data.images[picks].float().div(255).unsqueeze(1)  # class-major, [0, 1], 28x28
    real = torch.nn.functional.pad(real, (2, 2, 2, 2))  # as the sampler returns them: 32x32
    shift = {"by": 0}

    def fake_generate(model, classes, n, **kw):  # stands in for sampling: real images, maybe of other classes
        assert classes == list(range(10)) and n == per_class
        return real.roll(shift["by"] * per_class, dims=0)

    monkeypatch.setattr(monitor, "generate_from_class", fake_generate)
    model = type("M", (), {"unet": torch.nn.Linear(1, 1)})()
    right = monitor.score_model(model, per_class, steps=5)
    assert right.report.overall >= 0.8 and right.report.counts == [per_class] * 10
    shift["by"] = 1
    wrong = monitor.score_model(model, per_class, steps=5)
    assert wrong.report.overall <= 0.2
    assert wrong.images.shape == (10 * per_class, 1, 32, 32)


@sync
async def test_fidelity_is_scored_after_each_epoch_and_plotted(tmp_path, fashion_dir):
    """A short CPU run of the small UNet: after every epoch the pane's fidelity point is the classifier's score of
    that epoch's model (re-measured here from the epoch's checkpoint), plotted on the loss chart's right axis."""
    import sd_explorer.core.fashion as fm
    from sd_explorer.core.fashion.data import load_fashion_mnist
    from sd_explorer.core.fashion.monitor import score_model
    from tests.test_tiny_data import write_idx

    data = load_fashion_mnist(fashion_dir)
    small = tmp_path / "fm64"
    write_idx(small, data.images[:64].numpy(), data.labels[:64].numpy())
    app = make_app(tmp_path, data=str(small))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("TrainingPane")
        pane.sample_steps = 4
        await pilot.press("f5")
        app.query_one("#epochs", Input).value = "2"
        app.query_one("#batch", Input).value = "32"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not app.model_worker.busy("train"), what="two epochs")
        assert "done" in label_text(app, "#state")
        assert [step for step, _ in pane.fidelity] == [2, 4]
        ckpts = sorted((tmp_path / "fashion").glob("ckpt-*.safetensors"))
        assert [c.name for c in ckpts] == ["ckpt-000002.safetensors", "ckpt-000004.safetensors"]
        for (_, shown), ckpt in zip(pane.fidelity, ckpts):
            assert shown == score_model(fm.load_weights(ckpt, device="cpu"), steps=4).report.overall
        assert app.query_one("#samples").caption.startswith(f"after epoch 2 · fidelity {pane.fidelity[-1][1]:.0%}")


def test_curves_have_a_legend_a_fidelity_axis_and_whole_step_ticks():
    from sd_explorer.tui.panes.train_views import CURVES, draw_curves

    calls = []

    class Recorder:
        def __getattr__(self, name):
            return lambda *a, **k: calls.append((name, a, k))

    draw_curves(Recorder(), [10, 20, 30], [1.0, 0.5, 0.4], [(15, 0.1), (30, 0.35)])
    plots = [(a, k) for name, a, k in calls if name == "plot"]
    # the legend is the pane's #curves line (CURVES): each curve in the colour it names, none inside the plot
    assert [k["color"] for _, k in plots] == [colour for _, colour in CURVES]
    assert not any("label" in k for _, k in plots)
    assert plots[2][0] == ([15, 30], [10.0, 35.0]) and plots[2][1]["yside"] == "right"
    ticks = next(a for name, a, _ in calls if name == "xticks")
    assert ticks == ([0, 8, 15, 22, 30], ["0", "8", "15", "22", "30"])  # whole steps, up to the last one


@sync
async def test_every_field_is_labelled_at_80x24_and_pndm_counts_the_steps_asked(tmp_path):
    from textual.widgets import Select as SelectWidget

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        for key, pane_name in (("f3", "SweepPane"), ("f6", "ExercisesPane")):
            await pilot.press(key)
            await pilot.pause()
            pane = app.query_one(pane_name)
            for field in [*pane.query(Input), *pane.query(SelectWidget)]:
                target = field.query_one("SelectCurrent") if isinstance(field, SelectWidget) else field
                assert target.border_title, f"{pane_name} #{field.id} has no label"
                assert field.region.right <= SIZE[0] and field.region.width > 0
        # on tiny the exercises start from values that work on greyscale clothing, and say which prompt runs
        assert app.query_one("ExercisesPane").query_one("#values", Input).value == "|ankle boot|boot"
        assert app.query_one("ExercisesPane").query_one("#color", Input).value == "#c0c0c0"
        status = str(app.query_one("ExercisesPane").query_one("#status", Label).render())
        assert "prompt 'A photograph of a puppy'" in status
        assert "greyscale clothing only" in app.sub_title or app.model is None
        tabs = [str(tab.label) for tab in app.query("Tab")]
        assert [t.split()[0] for t in tabs] == ["f2", "f3", "f4", "f5", "f6"]
        sweep = app.query_one("SweepPane")
        sweep.query_one("#steps", Input).value = "30"
        sweep.grid_progress(StepPreview(4, 31, 999.0, []))  # step 5 of PNDM's 31 (one PRK warm-up)
        assert "step 5/31 (30 steps + 1 PNDM warm-up)" in str(sweep.query_one("#status", Label).render())


@sync
async def test_latents_pane_says_crop_and_greyscale_and_clears_on_error(tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 220, 40  # a red 300x200 "photo"
    rgb[50:150, 100:200] = (30, 60, 230)
    Image.fromarray(rgb).save(photo)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="model")
        await pilot.press("f4")
        pane = app.query_one("LatentsPane")
        pane.query_one("#path", Input).value = str(photo)
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.report is not None, what="round trip")
        source = str(pane.query_one("#source", Label).render())
        assert "300x200 centre-cropped to 64x64" in source
        assert "tiny's VAE is greyscale: colour is lost" in source
        pane.query_one("#path", Input).value = str(tmp_path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.model_worker.busy("latents"), what="failure")
        await pilot.pause()
        assert any("is a folder" in n.message for n in app.notices)
        assert pane.report is None and all(view.image is None for view in pane.query("ImageView"))


@sync
async def test_every_placeholder_and_label_is_whole_at_80x24(tmp_path):
    """No field's hint or label is cut at 80 columns, on any pane (the training pane's data and checkpoint
    hints were: ``IDX folder or .parquet (empty:``)."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        cut = []
        for key, pane_name in (("f2", "TokensPane"), ("f3", "SweepPane"), ("f4", "LatentsPane"),
                               ("f5", "TrainingPane"), ("f6", "ExercisesPane")):
            await pilot.press(key)
            await pilot.pause()
            pane = app.query_one(pane_name)
            for field in pane.query(Input):
                room = field.content_region.width - 1  # the cursor takes a cell
                if field.display and field.placeholder and not field.value and len(field.placeholder) > room:
                    cut.append(f"{pane_name} #{field.id}: {field.placeholder!r} in {room} cells")
            for label in pane.query(Label):
                text = str(label.render())
                # a label as wide as its text can still run off the screen's (or its container's) right edge
                edge = min(app.size.width, label.parent.content_region.right) - label.styles.padding.right
                room = min(label.content_region.width, edge - label.content_region.x)
                if label.display and label.size.height == 1 and "\n" not in text and len(text) > room > 0:
                    cut.append(f"{pane_name} #{label.id}: {text!r} in {room} cells")
        assert not cut, "\n".join(cut)


@sync
async def test_pause_holds_its_word_and_a_run_with_data_replaces_no_data(tmp_path, fashion_dir, monkeypatch):
    """Issue 27, item 4: "paused · ctrl+b resumes (the" was cut, then a late step report put back "training on
    cpu" while paused; "no data: type an IDX folder…" stayed on screen through a run with a valid data folder."""
    from sd_explorer.tui.panes.training import PAUSED

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("SD_EXPLORER_FASHION_DATA", raising=False)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one("TrainingPane")
        pane.sample_steps = 2
        await pilot.press("f5")
        await wait_for(pilot, lambda: "no data" in app.query_one("#noising").caption, what="no data")
        app.query_one("#data", Input).value = str(fashion_dir)
        app.query_one("#epochs", Input).value = "50"
        app.query_one("#batch", Input).value = "16"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: pane.stats is not None, what="a step report")
        await wait_for(pilot, lambda: app.query_one("#noising").caption == "noised at 8 timesteps",
                       what="the run's own noising row")
        assert app.query_one("#noising").image is not None and app.model_worker.busy("train")
        await pilot.press("ctrl+b")
        assert label_text(app, "#state") == PAUSED
        pane.show_step(pane.stats, list(zip(pane.steps, pane.losses)))  # a report sent just before the pause
        await pilot.pause()
        assert label_text(app, "#state") == PAUSED
        state = app.query_one("#state", Label)
        assert state.content_region.width >= len(PAUSED)  # whole at 80 columns
        await pilot.press("ctrl+b")
        assert label_text(app, "#state") in ("training (resumed)", "training on cpu · escape stops")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.model_worker.busy("train"), what="stop")
