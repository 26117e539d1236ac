"""Issue 13 in the app: bad numbers, files and folders through the panes leave the app up, with a
notification that names the fix (never a crash, never a raw exception name)."""

from __future__ import annotations

import json
import struct

from textual.widgets import Input

from tests.test_tui_support import SIZE, make_app, sync, wait_for


def notified(app, text: str) -> bool:
    return any(text in str(n.message) for n in app.notices)


async def training_pane(app, pilot) -> None:
    """The training pane, after the shipped model's preview grid (5 DDIM steps) that opening it starts."""
    app.query_one("TrainingPane").sample_steps = 5
    await pilot.press("f5")
    await wait_for(pilot, lambda: not app.model_worker.busy("fashion-show"), what="shipped preview")


async def sweep_with(app, pilot, **fields) -> None:
    await pilot.press("f3")
    for name, value in fields.items():
        app.query_one(f"#{name}", Input).value = value
    await pilot.press("ctrl+r")


@sync
async def test_sweep_numbers_out_of_range_notify(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        for fields, text in (
            (dict(steps="100000000"), "steps must be a whole number from 1 to 1000"),
            (dict(steps="2", seed=str(2**70)), "seed must be a whole number from 0 to 2^64-1"),
            (dict(seed="0", scales="1, 1e30"), "finite number from 0 to 100"),
        ):
            await sweep_with(app, pilot, **fields)
            await wait_for(pilot, lambda: notified(app, text) and not app.model_worker.busy("sweep"), what=text)
        # PNDM cannot take 1000 steps with steps_offset 1: refused before the first step, with the limit
        await sweep_with(app, pilot, scales="1", steps="1000")
        await wait_for(pilot, lambda: notified(app, "use at most 999"), what="PNDM's limit")
        assert app.is_running and app.model_worker.runner.alive
        assert not any("Traceback" in str(n.message) or "internal error" in str(n.message) for n in app.notices)


@sync
async def test_unwritable_output_folder_notifies_on_save(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app = make_app(tmp_path, output_dir=str(blocker / "out"))
    async with app.run_test(size=SIZE) as pilot:
        await sweep_with(app, pilot, scales="1", steps="1")
        pane = app.query_one("SweepPane")
        await wait_for(pilot, lambda: pane.result is not None, what="sweep result")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: notified(app, "cannot write to"), what="save refused")
        assert app.is_running and notified(app, "choose a writable folder")


@sync
async def test_corrupt_training_data_notifies(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train-images-idx3-ubyte").write_bytes(struct.pack(">iiii", 2051, 2097152, 2097152, 4194304))
    (data / "train-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, 0))
    app = make_app(tmp_path, data=str(data))
    async with app.run_test(size=SIZE) as pilot:
        await training_pane(app, pilot)
        app.query_one("#arch").value = "tiny"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: notified(app, "header declares"), what="IDX refused")
        assert app.is_running and not app.model_worker.busy("train")


@sync
async def test_checkpoint_with_bad_metadata_notifies(tmp_path):
    import torch
    from safetensors.torch import save_file

    from sd_explorer.core.fashion.model import CONFIG_KEY

    bad = tmp_path / "bad.safetensors"
    save_file({"w": torch.zeros(1)}, str(bad), metadata={CONFIG_KEY: json.dumps({"block_out_channels": [7, 14],
                                                                                  "norm_num_groups": 4})})
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await training_pane(app, pilot)
        app.query_one("#ckpt", Input).value = str(bad)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: notified(app, "divisible by norm_num_groups"), what="refused")
        assert app.is_running


def test_settings_file_values_are_checked_at_load(tmp_path):
    from argparse import Namespace

    import pytest

    from sd_explorer.core.errors import UserError
    from sd_explorer.tui.config import FILE_KEYS, load_settings

    path = tmp_path / "config.toml"
    for text, fix in (
        ("steps = -5", "steps = -5 must be a whole number from 1 to 1000"),
        ("seed = 1180591620717411303424", "seed = 1180591620717411303424 must be a whole number from 0 to"),
        ("steps = 100000000", "steps = 100000000 must be a whole number"),
        ("model = 5", 'model = 5 must be text in quotes, e.g. "tiny"'),
        ("output_dir = 5", 'output_dir = 5 must be text in quotes, e.g. "outputs"'),
        ('theme = "nope"', "theme = 'nope' is not a theme; use one of"),
        ('graphics = "vt340"', "graphics = 'vt340' must be one of 'cells', 'auto', 'sixel', 'kitty'"),
        ("refiner_at = 2", "refiner_at = 2 must be a number between 0 and 1"),
        ("colour = 1", "unknown setting(s) colour"),
    ):
        path.write_text(text + "\n")
        with pytest.raises(UserError) as info:
            load_settings(Namespace(config=str(path)))
        assert fix in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value), text
    path.write_text('steps = 30\nseed = 18446744073709551615\ntheme = "nord"\noutput_dir = "o"\n')
    s = load_settings(Namespace(config=str(path)))
    assert (s.steps, s.seed, s.theme, s.output_dir) == (30, 2**64 - 1, "nord", "o")
    assert set(FILE_KEYS) >= {"model", "output_dir", "theme", "seed", "steps", "pane"}
