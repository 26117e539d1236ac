"""Settings, the key table, the command palette, headless screenshots and the entry point."""

from __future__ import annotations

import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from PIL import Image

from sd_explorer.core.errors import UserError
from tests.test_tui_support import SIZE, make_app, sync, wait_for
from sd_explorer.tui.config import Settings, load_settings
from sd_explorer.tui.app import ExplorerApp
from sd_explorer.tui.help import HelpScreen, key_markdown

ROOT = Path(__file__).resolve().parents[1]


def _write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sd-explorer" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_settings_defaults_file_then_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_settings(Namespace()) == Settings()
    _write_config(tmp_path, 'model = "my-model"\ntheme = "nord"\noutput_dir = "/data/out"\ndevice = "cpu"\n')
    s = load_settings(Namespace(model=None, out=None, device=None))
    assert (s.model, s.theme, s.output_dir, s.device) == ("my-model", "nord", "/data/out", "cpu")
    s = load_settings(Namespace(model="tiny", out="elsewhere", device=None, pane="sweep"))
    assert (s.model, s.output_dir, s.device, s.pane) == ("tiny", "elsewhere", "cpu", "sweep")


def test_config_errors_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = _write_config(tmp_path, "model = [unclosed\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_settings(Namespace())
    path.write_text('colour = "red"\n')
    with pytest.raises(UserError, match="unknown setting"):
        load_settings(Namespace())
    with pytest.raises(UserError, match="no such file"):
        load_settings(Namespace(config=str(tmp_path / "missing.toml")))
    path.write_text("")
    with pytest.raises(UserError, match="pane = .gallery. must be one of"):
        load_settings(Namespace(pane="gallery"))


def test_docs_keys_md_matches_the_bindings():
    assert (ROOT / "docs" / "keys.md").read_text() == key_markdown(ExplorerApp.BINDINGS)
    text = key_markdown(ExplorerApp.BINDINGS)
    for key, what in [("ctrl+r", "Run sweep"), ("ctrl+n", "New seed"), ("escape", "Cancel"),
                      ("ctrl+s", "Save grid"), ("ctrl+g", "Use sweep image"), ("ctrl+b", "Pause/resume"),
                      ("f1", "Help")]:
        assert f"`{key}` | {what}" in text


def test_every_key_left_out_of_the_footer_is_in_the_palette():
    """The footer shows a few keys per pane (it must fit 80 columns); every other action is in the palette."""
    from sd_explorer.tui.commands import commands, pane_classes

    palette = commands(ExplorerApp.BINDINGS)
    in_palette = {(c.pane, c.action) for c in palette}
    owners = [(None, ExplorerApp)] + [(pane, cls) for _, pane, cls in pane_classes()]
    hidden = [(pane, b.action) for pane, cls in owners for b in cls.BINDINGS if not b.show and "(" not in b.action]
    assert ("sweep", "toggle_attention") in hidden and (None, "cycle_graphics") in hidden
    assert [h for h in hidden if h not in in_palette] == []
    # each entry's help line is its binding's tooltip and key: written once, on the binding
    assert all(c.help.endswith(")") and not c.help.startswith("(") for c in palette)
    recipe = next(c for c in palette if (c.pane, c.action) == ("training", "recipe"))
    assert recipe.title == "Training: Recipe" and recipe.help == "Fill in the shipped model's recipe (a GPU recipe) (ctrl+t)"
    assert sum(c.title.startswith("Go to: ") for c in palette) == 5


@sync
async def test_the_footer_fits_80_columns_on_every_pane(tmp_path):
    """Every key the footer shows is whole, left of the palette key (it dropped 'f4 La▏^p palette')."""
    from textual.widgets._footer import FooterKey

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("f2", "f3", "f4", "f5", "f6"):
            await pilot.press(key)
            await pilot.pause()
            keys = [k for k in app.screen.query(FooterKey) if k.display]
            palette = next(k for k in keys if k.has_class("-command-palette"))
            shown = [k for k in keys if k is not palette]
            assert shown and all(k.region.width >= k.get_content_width(k.size, k.size) for k in shown), key
            assert max(k.region.right for k in shown) <= palette.region.x, key


@sync
async def test_f8_switches_the_graphics_mode_and_says_which_is_in_use(tmp_path, monkeypatch):
    """cells -> auto -> sixel -> kitty -> cells at run time, applied to every image view; one notice each.
    Without a terminal (as here, and inside tmux for auto) the images stay half-block cells."""
    from textual.widgets import Label, Static

    from sd_explorer.tui.widgets import graphics
    from sd_explorer.tui.widgets.image_view import ImageView

    class FakeSharp(Static):
        def __init__(self, image=None, classes=None):
            super().__init__("", classes=classes)
            self.image = image

    real = graphics.choose_image_widget
    monkeypatch.setattr(graphics, "choose_image_widget",
                        lambda mode, *a: FakeSharp if mode == "sixel" else real(mode, *a))
    monkeypatch.setattr(ImageView, "sharp_widget", None)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        views = list(app.query(ImageView))
        assert app.graphics_mode == "cells" and len(views) > 6
        await pilot.press("f8")
        await wait_for(pilot, lambda: app.graphics_mode == "auto", what="auto")
        assert app.notices[-1].message == "graphics = auto: half-block cells (no terminal on stdout)"
        await pilot.press("f8")
        await wait_for(pilot, lambda: app.graphics_mode == "sixel", what="sixel")
        await pilot.pause()
        assert app.notices[-1].message.startswith("graphics = sixel: Sixel (forced")
        latents = app.query_one("#c0", ImageView)
        assert str(latents.query_one(".caption", Label).render()) == "latent c0"  # the sharp layout's caption
        latents.image = Image.new("RGB", (8, 8), "red")
        await pilot.pause()
        assert latents.query_one(FakeSharp).image is not None
        await pilot.press("f8", "f8")  # kitty (no terminal: cells), then cells
        await wait_for(pilot, lambda: app.graphics_mode == "cells", what="cells")
        await pilot.pause()
        assert not list(latents.query(FakeSharp)) and ImageView.sharp_widget is None
        assert app.notices[-1].message == "graphics = cells: half-block cells"


@sync
async def test_help_fits_80x24_and_wraps_long_actions(tmp_path):
    """At 80x24 help takes the whole screen and no column runs off it: long actions wrap onto more lines."""
    from textual.widgets import DataTable

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        widths = sum(c.get_render_width(table) for c in table.columns.values())
        assert app.screen.query_one("Vertical").region.width == 80
        assert widths <= table.scrollable_content_region.width
        actions = [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
        long = actions.index("In the token table: the sweep overlays this token's heat map")
        assert table.ordered_rows[long].height == 2 and table.ordered_rows[0].height == 1


@sync
async def test_help_screen_and_palette_cover_every_action(tmp_path):
    from sd_explorer.tui.commands import commands

    palette = commands(ExplorerApp.BINDINGS)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        listed = [c.title for c in app.get_system_commands(app.screen)]
        titles = set(listed)
        assert {c.title for c in palette} <= titles
        assert len(listed) == len(titles) and "Keys" not in titles  # the keys are listed once: "Help: keys"
        # every pane action in the palette exists on its pane
        for _, _, pane, action in palette:
            target = app if pane is None else app.pane(pane)
            assert action == "" or callable(getattr(target, f"action_{action}"))
        # a palette entry switches pane and runs the action
        app.run_pane_action("sweep", "run")
        assert app.query_one("#panes").active == "sweep"
        await wait_for(pilot, lambda: app.query_one("SweepPane").result is not None, what="sweep")


def test_headless_screenshot_of_a_pane(tmp_path):
    out = tmp_path / "shots" / "tokens.svg"
    code = (
        "import sys; from sd_explorer.tui.entry import main; "
        f"sys.exit(main(['--screenshot', {str(out)!r}, '--pane', 'tokens', '--prompt', 'A photograph of a puppy',"
        f" '--device', 'cpu', '--out', {str(tmp_path)!r}]))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("tokens.svg")
    svg = out.read_text()
    assert svg.startswith("<svg") and "photograph&lt;/w&gt;" in svg and "8853" in svg


def test_bad_flags_exit_2_without_traceback(tmp_path):
    code = "import sys; from sd_explorer.tui.entry import main; sys.exit(main(['--pane', 'tokens', '--config', '/no/such.toml']))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "no such file" in run.stderr and "Traceback" not in run.stderr


def test_progress_messages_replace_each_other_only_within_a_job():
    from sd_explorer.core.jobs import Job, JobEvent
    from sd_explorer.tui.messages import job_message
    from sd_explorer.tui.progress import StepPreview

    a, b = Job("sweep", lambda j: None, id=1), Job("sweep", lambda j: None, id=2)

    def preview(job, index):
        return job_message(JobEvent("progress", job, payload=StepPreview(index, 10, 999.0 - index, [])))

    step1, step2 = preview(a, 1), preview(a, 2)
    assert step1.can_replace(step2) and step2.can_replace(step1)  # a newer preview of the same job wins
    assert not step1.can_replace(preview(b, 1))  # never another job's
    assert not step1.can_replace(job_message(JobEvent("finished", a, result=3)))
    assert not job_message(JobEvent("finished", a)).can_replace(step2)


def test_milestones_are_never_replaced():
    from sd_explorer.core.jobs import Job, JobEvent
    from sd_explorer.tui.messages import job_message
    from sd_explorer.tui.progress import (BatchStarted, CellsDone, CheckpointSaved, DataLoaded, EpochSamples, InsightCollected,
                              PhaseText, StepPreview, TrainerReady, TrainingStep)

    job = Job("train", lambda j: None, id=7)

    def message(payload):
        return job_message(JobEvent("progress", job, payload=payload))

    skippable = [StepPreview(0, 4, 999.0, []), TrainingStep(None, [(1, 0.5)])]
    milestones = [BatchStarted((0, 1)), CellsDone((0, 1), []), InsightCollected(None), PhaseText("training…"),
                  DataLoaded(None, 8000), TrainerReady(None), EpochSamples(None, 32, None, None),
                  CheckpointSaved("/runs/ckpt-1")]
    assert all(p.milestone for p in milestones) and not any(p.milestone for p in skippable)
    for m in milestones:
        for other in [*skippable, *milestones]:
            assert not message(m).can_replace(message(other)) and not message(other).can_replace(message(m))
    # two skippable kinds of the same job never stand for each other, nor does an untyped payload
    assert not message(skippable[0]).can_replace(message(skippable[1]))
    assert not message(skippable[0]).can_replace(message(("step", 1, [])))
    assert message(TrainingStep(None, [(1, 0.5)])).can_replace(message(TrainingStep(None, [(1, 0.5), (2, 0.4)])))


def test_payloads_are_frozen_and_travel_without_textual():
    import dataclasses

    from sd_explorer.tui.progress import StepPreview

    with pytest.raises(dataclasses.FrozenInstanceError):
        StepPreview(0, 4, 999.0, []).index = 1
    code = "import sys, tui.progress; sys.exit('textual' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0


@sync
async def test_job_errors_become_notifications_and_the_app_keeps_running(tmp_path):
    class OutOfMemoryError(RuntimeError):  # what torch.cuda raises, by name
        pass

    def oom(job):
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def bug(job):
        raise KeyError("unet")

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("SweepPane")
        pane.submit("sweep", oom)
        pane.submit("sweep", bug)
        await wait_for(pilot, lambda: len(app.notices) >= 2 and not app.model_worker.busy("sweep"),
                       what="two failures")
        messages = [n.message for n in app.notices]
        assert any("Out of GPU memory" in m and "smaller size" in m for m in messages)
        assert any(m.startswith("internal error: KeyError: 'unet' (please report; details in") and "worker.log" in m
                   for m in messages)
        assert "KeyError" in (tmp_path / "worker.log").read_text()
        assert app.model_worker.runner.alive
        await pilot.press("f2", "x")
        assert app.query_one("TokensPane").breakdown.text.endswith("x")


class _Tty:
    def isatty(self) -> bool:
        return True


def test_sharp_graphics_fall_back_to_cells(monkeypatch, tmp_path):
    import importlib.util

    from sd_explorer.tui.widgets.graphics import choose_image_widget

    assert choose_image_widget("cells", {}, _Tty()) is None
    assert choose_image_widget("auto", {"TMUX": f"{tmp_path}/tmux-0/default,1,0"}, _Tty()) is None
    assert choose_image_widget("auto", {"TERM": "screen-256color"}, _Tty()) is None
    assert choose_image_widget("auto", {}, open(__file__)) is None  # not a terminal (SSH -T, pipes)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert choose_image_widget("auto", {"TERM": "xterm-kitty"}, _Tty()) is None  # package missing


@sync
async def test_image_view_hands_images_to_a_sharp_widget(monkeypatch):
    from PIL import Image
    from textual.app import App
    from textual.widgets import Label, Static

    from sd_explorer.tui.widgets.image_view import ImageView

    class FakeSharp(Static):
        def __init__(self, image=None, classes=None):
            super().__init__("", classes=classes)
            self.image = image

    monkeypatch.setattr(ImageView, "sharp_widget", FakeSharp)

    class Demo(App):
        def compose(self):
            yield ImageView(caption="before")

    async with Demo().run_test(size=(40, 12)) as pilot:
        view = pilot.app.query_one(ImageView)
        picture = Image.new("RGB", (8, 8), "red")
        view.image, view.caption = picture, "1 · no CFG"
        await pilot.pause()
        handed = view.query_one(FakeSharp).image  # scaled to the child's whole cells (tests/test_graphics.py)
        assert handed.getpixel((0, 0)) == (255, 0, 0) and handed.size[0] > picture.size[0]
        assert str(view.query_one(".caption", Label).render()) == "1 · no CFG"


def test_default_prompt_suits_the_model(tmp_path, monkeypatch):
    """tiny only knows garments; a real model gets the chapter's prompt; a given prompt always wins."""
    from types import SimpleNamespace

    from sd_explorer.tui.config import CHAPTER_PROMPT, TINY_PROMPT, load_settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_settings(SimpleNamespace()).prompt == TINY_PROMPT
    assert load_settings(SimpleNamespace(model="some/model")).prompt == CHAPTER_PROMPT
    assert load_settings(SimpleNamespace(model="some/model", prompt="a cat")).prompt == "a cat"


@sync
async def test_loaded_model_leaves_the_collectors_scans_until_reload_and_exit(tmp_path):
    """Full GC passes over torch + Textual took ~0.3 s with the GIL held (a UI freeze every few
    seconds of sampling); the app freezes what is alive once the model has loaded."""
    import gc

    def scanned(obj) -> bool:
        return any(o is obj for o in gc.get_objects())

    from sd_explorer.tui.gc_tuning import THRESHOLDS

    before = gc.get_threshold()
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="model")
        assert gc.get_freeze_count() > 10_000 and gc.get_threshold() == THRESHOLDS
        assert not scanned(app.model.unet)
        first = app.model
        await pilot.press("ctrl+l")  # reload: unfreezes (the old model may be collected), freezes the new one
        await wait_for(pilot, lambda: app.model is not None and app.model is not first, what="reloaded model")
        assert not scanned(app.model.unet)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


@sync
async def test_engine_status_shows_in_the_header_then_clears(tmp_path, monkeypatch):
    """Graph captures / torch.compile report through load_model's status callback, from the worker."""
    import threading

    import sd_explorer.core.models
    from sd_explorer import core
    from sd_explorer.tui.messages import EngineStatus

    real, seen = core.models.load_model, {}

    def recording(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(core.models, "load_model", recording)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="model")
        # the app asks for torch.compile in the background by default (a no-op off CUDA)
        assert seen["compile"] == "default" and seen["background_compile"] is True and callable(seen["status"])
        plain = app.sub_title
        app.status_seconds = 2.0  # a finished status stays this long (8 s in use)
        worker = threading.Thread(target=seen["status"], args=("capturing CUDA graph for UNet [7x4x64x64]…",))
        worker.start()
        worker.join()
        await wait_for(pilot, lambda: "capturing CUDA graph" in app.sub_title, what="status in header")
        await pilot.pause(2.5)
        assert "capturing CUDA graph" in app.sub_title  # in progress: stays until the next status
        assert app.sub_title == "tiny · capturing CUDA graph for UNet…"  # short: the shapes are left out
        full = "captured CUDA graph for UNet [7x4x64x64, 7x77x768, 7] in 1.48 s"
        app.post_message(EngineStatus(full))
        await wait_for(pilot, lambda: "in 1.48 s" in app.sub_title, what="finished status")
        assert app.sub_title == "tiny · captured CUDA graph for UNet in 1.48 s"
        assert app.notices[-1].message == full  # the whole line: a notification, kept in the message log
        header = app.query_one("HeaderTitle").render_line(0).text
        assert "in 1.48 s" in header  # not cut at 80 columns
        await wait_for(pilot, lambda: app.sub_title == plain, what="the header back to the model")


def test_compile_setting_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_settings(Namespace(compile="default")).compile == "default"
    cfg = _write_config(tmp_path, 'compile = "fast"\n')
    with pytest.raises(UserError, match="compile = 'fast'.*default"):
        load_settings(Namespace(config=str(cfg)))


def test_cli_compile_flag_takes_the_engines_modes():
    from sd_explorer.core.cli import build_parser
    from sd_explorer.core.inputs import COMPILE_MODES

    assert build_parser().parse_args(["--compile", COMPILE_MODES[-1]]).compile == COMPILE_MODES[-1]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--compile", "fast"])


def test_refiner_settings_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    s = load_settings(Namespace(refiner="stabilityai/stable-diffusion-xl-refiner-1.0", refiner_at=0.7))
    assert s.refiner.endswith("refiner-1.0") and s.refiner_at == 0.7
    for bad in ("1.0", "0", '"x"'):
        cfg = _write_config(tmp_path, f"refiner_at = {bad}\n")
        with pytest.raises(UserError, match="refiner_at = .*between 0 and 1"):
            load_settings(Namespace(config=str(cfg)))
