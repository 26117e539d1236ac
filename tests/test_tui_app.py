"""Settings, the key table, the command palette, headless screenshots and the entry point."""

from __future__ import annotations

import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from core.errors import UserError
from tests.test_tui_support import SIZE, make_app, sync, wait_for
from tui.config import Settings, load_settings
from tui.app import ExplorerApp
from tui.help import HelpScreen, key_markdown

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


@sync
async def test_help_screen_and_palette_cover_every_action(tmp_path):
    from tui.commands import COMMANDS

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        listed = [c.title for c in app.get_system_commands(app.screen)]
        titles = set(listed)
        assert {t for t, *_ in COMMANDS} <= titles
        assert len(listed) == len(titles) and "Keys" not in titles  # the keys are listed once: "Help: keys"
        # every pane action in the palette exists on its pane
        for _, _, pane, action in COMMANDS:
            target = app if pane is None else app.pane(pane)
            assert action == "" or callable(getattr(target, f"action_{action}"))
        # a palette entry switches pane and runs the action
        app.run_pane_action("sweep", "run")
        assert app.query_one("#panes").active == "sweep"
        await wait_for(pilot, lambda: app.query_one("SweepPane").result is not None, what="sweep")


def test_headless_screenshot_of_a_pane(tmp_path):
    out = tmp_path / "shots" / "tokens.svg"
    code = (
        "import sys; from tui.entry import main; "
        f"sys.exit(main(['--screenshot', {str(out)!r}, '--pane', 'tokens', '--prompt', 'A photograph of a puppy',"
        f" '--device', 'cpu', '--out', {str(tmp_path)!r}]))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("tokens.svg")
    svg = out.read_text()
    assert svg.startswith("<svg") and "photograph&lt;/w&gt;" in svg and "8853" in svg


def test_bad_flags_exit_2_without_traceback(tmp_path):
    code = "import sys; from tui.entry import main; sys.exit(main(['--pane', 'tokens', '--config', '/no/such.toml']))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "no such file" in run.stderr and "Traceback" not in run.stderr


def test_progress_messages_replace_each_other_only_within_a_job():
    from core.jobs import Job, JobEvent
    from tui.messages import job_message

    a, b = Job("sweep", lambda j: None, id=1), Job("sweep", lambda j: None, id=2)
    step1, step2 = job_message(JobEvent("progress", a, payload=1)), job_message(JobEvent("progress", a, payload=2))
    assert step1.can_replace(step2)
    assert not step1.can_replace(job_message(JobEvent("progress", b, payload=1)))
    assert not step1.can_replace(job_message(JobEvent("finished", a, result=3)))
    assert not job_message(JobEvent("finished", a)).can_replace(step2)


def test_milestones_are_never_replaced():
    from core.jobs import Job, JobEvent
    from tui.messages import Milestone, job_message

    job = Job("train", lambda j: None, id=7)
    step = job_message(JobEvent("progress", job, payload=("step", 1, [])))
    epoch = job_message(JobEvent("progress", job, payload=Milestone(("epoch", 0, None))))
    assert not epoch.can_replace(step) and not step.can_replace(epoch)


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

    from tui.widgets.graphics import choose_image_widget

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

    from tui.widgets.image_view import ImageView

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

    from tui.config import CHAPTER_PROMPT, TINY_PROMPT, load_settings

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

    from tui.heap import THRESHOLDS

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

    import core.models
    from tui.messages import EngineStatus

    real, seen = core.models.load_model, {}

    def recording(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(core.models, "load_model", recording)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="model")
        assert seen["compile"] is None and callable(seen["status"])
        plain = app.sub_title
        worker = threading.Thread(target=seen["status"], args=("capturing CUDA graph for UNet [7x4x64x64]…",))
        worker.start()
        worker.join()
        await wait_for(pilot, lambda: "capturing CUDA graph" in app.sub_title, what="status in header")
        assert app._status_timer is None  # in progress: stays until the next status
        app.post_message(EngineStatus("captured CUDA graph for UNet [7x4x64x64] in 1.48 s"))
        await wait_for(pilot, lambda: "in 1.48 s" in app.sub_title, what="finished status")
        app._status_timer.stop()
        app._plain_sub_title()
        assert app.sub_title == plain


def test_compile_setting_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_settings(Namespace(compile="default")).compile == "default"
    cfg = _write_config(tmp_path, 'compile = "fast"\n')
    with pytest.raises(UserError, match="compile = 'fast'.*default"):
        load_settings(Namespace(config=str(cfg)))


def test_cli_compile_flag_takes_the_engines_modes():
    from core.cli import build_parser
    from core.fields import COMPILE_MODES

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
