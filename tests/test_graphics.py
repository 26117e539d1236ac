"""The ``graphics`` setting picks the image renderer (tui.widgets.graphics), and the sharp
(Kitty/Sixel) child of ImageView is sized and fed as seen in a real xterm -ti vt340 and a real kitty
(tui.widgets.kitty; the last test runs tests/kitty_probe.py in kitty under Xvfb where both are installed)."""

from __future__ import annotations

from argparse import Namespace

import pytest
from PIL import Image

from sd_explorer.core.errors import UserError
from tests.test_tui_support import sync
from sd_explorer.tui.config import load_settings
from sd_explorer.tui.widgets import kitty
from sd_explorer.tui.widgets.graphics import MODES, choose_image_widget
from sd_explorer.tui.widgets.sixel import sixel_widget
from sd_explorer.tui.widgets.image_view import ImageView

widgets = pytest.importorskip("textual_image.widget")  # the optional [graphics] extra
renderables = pytest.importorskip("textual_image.renderable")


class _Tty:
    def isatty(self) -> bool:
        return True


def _settings(tmp_path, graphics: str):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'graphics = "{graphics}"\n', encoding="utf-8")
    return load_settings(Namespace(config=str(cfg)))


def test_the_setting_selects_the_renderer(tmp_path, monkeypatch):
    monkeypatch.setattr(renderables, "Image", renderables.SixelImage)  # the terminal answered Sixel
    monkeypatch.setattr(kitty, "_answer", "")
    chosen = {mode: choose_image_widget(_settings(tmp_path, mode).graphics, {"TERM": "xterm"}, _Tty()) for mode in MODES}
    sixel = sixel_widget()  # textual-image's Sixel widget, palette first (tui.widgets.sixel)
    tgp = kitty.kitty_widget()  # textual-image's Kitty widget, freeing its pictures (tui.widgets.kitty)
    assert issubclass(sixel, widgets.SixelImage) and issubclass(tgp, widgets.TGPImage)
    assert chosen == {"cells": None, "auto": sixel, "sixel": sixel, "kitty": tgp}
    monkeypatch.setattr(renderables, "Image", renderables.TGPImage)
    assert choose_image_widget("auto", {"TERM": "xterm-kitty"}, _Tty()) is tgp
    monkeypatch.setattr(renderables, "Image", renderables.HalfcellImage)  # neither protocol answered
    assert choose_image_widget("auto", {"TERM": "xterm"}, _Tty()) is None


def test_auto_falls_back_to_half_blocks_inside_tmux(monkeypatch, tmp_path):
    monkeypatch.setattr(renderables, "Image", renderables.SixelImage)
    tmux = {"TMUX": f"{tmp_path}/tmux-0/default,1,0", "TERM": "tmux-256color"}  # socket,pid,session
    assert choose_image_widget("auto", tmux, _Tty()) is None
    assert choose_image_widget("auto", {"TERM": "screen-256color"}, _Tty()) is None
    assert choose_image_widget("sixel", tmux, _Tty()) is sixel_widget()  # forced: tmux 3.4+ with Sixel


def test_an_unknown_graphics_mode_names_the_choices(tmp_path):
    with pytest.raises(UserError, match="graphics = 'half-blocks' must be one of 'cells', 'auto', 'sixel', 'kitty'"):
        _settings(tmp_path, "half-blocks")


@sync
async def test_sharp_child_is_sized_to_whole_cells_and_keeps_the_labels_visible(monkeypatch):
    """A square picture in a 30x20-cell view on 10x20-px cells: 19 rows (one for the caption),
    38 columns wanted but 30 fit, so 30x15 cells = 300x300 px, nearest-neighbour; and the
    caption and a sibling label keep their text colour (a composed Sixel widget made it transparent)."""
    from textual.app import App
    from textual.widgets import Label

    monkeypatch.setattr(ImageView, "sharp_widget", widgets.SixelImage)
    monkeypatch.setattr("sd_explorer.tui.widgets.graphics.cell_pixels", lambda: (10, 20))
    picture = Image.new("RGB", (28, 28), "black")
    picture.putpixel((0, 0), (255, 255, 255))

    class Demo(App):
        def compose(self):
            yield Label("status", id="status")
            yield ImageView(picture, caption="1 · no CFG", id="view")

        CSS = "#view { width: 30; height: 20; } #status { height: 1; }"

    async with Demo().run_test(size=(40, 24)) as pilot:
        await pilot.pause()
        view = pilot.app.query_one("#view", ImageView)
        sharp = view.query_one(widgets.SixelImage)
        assert (sharp.size.width, sharp.size.height) == (30, 15)
        assert sharp.image.size == (300, 300)
        assert sharp.image.getpixel((10, 10)) == (255, 255, 255)  # one source pixel -> a 10x10 block, unblurred
        assert sharp.image.getpixel((11, 11)) == (0, 0, 0)
        for label in (pilot.app.query_one("#status", Label), view.query_one(".caption", Label)):
            assert label.visual_style.foreground.a > 0, label
        caption = view.query_one(".caption", Label)
        assert caption.region.y == sharp.region.bottom  # the caption sits right under the image
        view.image = None
        await pilot.pause()
        assert sharp.image is None


@pytest.mark.parametrize("protocol", ["sixel", "kitty"])
@sync
async def test_a_sharp_image_narrower_than_its_view_is_centred(monkeypatch, protocol):
    """A square picture in a 60x20-cell view on 10x20-px cells takes 38x19 cells: centred, 11 cells in, with its
    caption under it. The layout's ``align`` centred the image and the full-width caption as one block, so
    the image sat at the left edge (seen in kitty: a one-cell sweep at font size 3, 248 of 533 columns)."""
    from textual.app import App
    from textual.widgets import Label

    sharp_class = widgets.SixelImage if protocol == "sixel" else kitty.kitty_widget()
    monkeypatch.setattr(ImageView, "sharp_widget", sharp_class)
    monkeypatch.setattr("sd_explorer.tui.widgets.graphics.cell_pixels", lambda: (10, 20))
    _Sent(monkeypatch)

    class Demo(App):
        CSS = "#view { width: 60; height: 20; }"

        def compose(self):
            yield ImageView(Image.new("RGB", (28, 28), "white"), caption="1 · no CFG", id="view")

    async with Demo().run_test(size=(70, 24)) as pilot:
        await pilot.pause()
        view = pilot.app.query_one("#view", ImageView)
        sharp = view.query_one(sharp_class)
        assert (sharp.region.x, sharp.size.width, sharp.size.height) == (11, 38, 19)
        assert view.query_one(".caption", Label).region.y == sharp.region.bottom
        view.styles.width = 48  # a narrower view (the same box, by its height) centres it again
        await pilot.pause()
        assert (sharp.region.x, sharp.size.width) == (5, 38)


def test_the_cell_size_follows_a_font_change(monkeypatch):
    """The cell size was asked once, at start-up: after kitty's ctrl+shift+= (or set-font-size 3) pictures were
    sized with the old cells (a one-cell sweep at font size 3: 248x112 cells of 2232x2240 px, for 3x8-px cells).
    Now the window's size in pixels (TIOCGWINSZ) is read each time, and textual-image's figure follows it."""
    from textual_image._terminal import get_cell_size

    from sd_explorer.tui.widgets import graphics

    monkeypatch.setattr(get_cell_size, "_result", type(get_cell_size())(10, 20), raising=False)
    monkeypatch.setattr(graphics, "cell_pixels_now", lambda: (3, 8))
    assert graphics.cell_pixels() == (3, 8) and tuple(get_cell_size()) == (3, 8)
    monkeypatch.setattr(graphics, "cell_pixels_now", lambda: None)  # a terminal that leaves the pixels out
    assert graphics.cell_pixels() == (3, 8)


def test_modes_cycle_and_each_is_described_in_one_line(monkeypatch):
    from sd_explorer.tui.widgets.graphics import describe, needs_query, next_mode

    assert [next_mode(m) for m in MODES] == ["auto", "sixel", "kitty", "cells"]
    tmux = {"TMUX": "/tmp/tmux-0/default,1,0"}
    assert describe("auto", None, tmux, _Tty()) == \
        "graphics = auto: half-block cells (inside tmux/screen; sixel forces Sixel on tmux 3.4+)"
    monkeypatch.setattr(renderables, "Image", renderables.SixelImage)  # the terminal answered Sixel
    assert describe("sixel", widgets.SixelImage) == "graphics = sixel: Sixel (forced)"
    assert describe("kitty", widgets.TGPImage) == \
        "graphics = kitty: Kitty graphics (forced; the terminal did not answer for it: f8 goes on)"
    assert describe("auto", widgets.SixelImage) == "graphics = auto: Sixel"
    # the terminal is asked only by the first import of textual_image, never inside tmux for auto
    assert not needs_query("cells", {}, _Tty()) and not needs_query("auto", tmux, _Tty())
    assert not needs_query("sixel", {}, _Tty())  # this test module imported it already
    monkeypatch.delitem(__import__("sys").modules, "textual_image.renderable")
    assert needs_query("sixel", {}, _Tty()) and needs_query("auto", {"TERM": "xterm"}, _Tty())


# ---------------------------------------------------------------- Kitty graphics (issue 27, item 10)
def test_an_old_kitty_keeps_the_half_blocks_under_auto(monkeypatch):
    """kitty 0.26.5 (Debian 12) answers the graphics query but has no Unicode placeholders (0.28+):
    auto drew boxes there; now auto keeps the half blocks and says why, and a forced kitty says so too."""
    from sd_explorer.tui.widgets.graphics import describe

    reply = "\x1bP>|kitty(0.26.5)\x1b\\\x1b[?62;c"  # XTVERSION, then the DA1 that ends the wait
    assert kitty.parse_version(reply) == "kitty(0.26.5)" and kitty.parse_version("\x1b[?62;c") == ""
    why = "kitty 0.26.5 has no Unicode placeholders, which 0.28+ has"
    assert kitty.missing_placeholders("kitty(0.26.5)") == why
    assert [kitty.missing_placeholders(v) for v in ("kitty(0.28.0)", "kitty(0.35.2)", "WezTerm 20240203", "")] == [""] * 4
    monkeypatch.setattr(renderables, "Image", renderables.TGPImage)  # the terminal answered the Kitty query
    monkeypatch.setattr(kitty, "_answer", "kitty(0.26.5)")
    assert choose_image_widget("auto", {"TERM": "xterm-kitty"}, _Tty()) is None
    assert describe("auto", None, {"TERM": "xterm-kitty"}, _Tty()) == \
        f"graphics = auto: half-block cells ({why}; graphics = kitty forces them)"
    forced = choose_image_widget("kitty", {"TERM": "xterm-kitty"}, _Tty())
    assert forced is kitty.kitty_widget()
    assert describe("kitty", forced) == f"graphics = kitty: Kitty graphics (forced; {why}: boxes show, f8 goes on)"
    monkeypatch.setattr(kitty, "_answer", "kitty(0.35.2)")
    assert choose_image_widget("auto", {"TERM": "xterm-kitty"}, _Tty()) is forced
    assert describe("auto", forced) == "graphics = auto: Kitty graphics"


def test_the_kitty_renderable_frees_its_picture(monkeypatch):
    """textual-image's cleanup wrote ``a=d,I=<id>``, which kitty reads as d=a (visible placements, never a virtual
    one): nothing was freed. The app's writes ``a=d,d=I,i=<id>``, quietly (kitty 0.35.2 answers ENOENT after it)."""
    import io
    import sys

    import textual_image.renderable.tgp as tgp

    written = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", written)
    stock, ours = tgp.Image(Image.new("RGB", (4, 4))), kitty.kitty_widget()._Renderable(Image.new("RGB", (4, 4)))
    stock.terminal_image_id = ours.terminal_image_id = 7
    stock.cleanup()
    assert written.getvalue() == "\x1b_Ga=d,I=7\x1b\\"  # textual-image 0.12: no d key
    written.truncate(0), written.seek(0)
    ours.cleanup()
    ours.cleanup()  # once only
    assert written.getvalue() == kitty.free_command(7) == "\x1b_Ga=d,d=I,i=7,q=2\x1b\\"


class _Sent:
    """Records textual-image's graphics commands instead of writing them to the terminal."""

    def __init__(self, monkeypatch):
        import textual_image.renderable.tgp as tgp

        self.commands: list[dict] = []
        monkeypatch.setattr(tgp, "_send_tgp_message", lambda payload=None, **keys: self.commands.append(keys))

    def take(self) -> list[tuple]:
        """(action, id, delete) of each command since the last take: uploads have no action, only their
        last chunk is kept (``m=0``)."""
        taken = [(c.get("a"), c.get("i"), c.get("d")) for c in self.commands if c.get("m") != 1]
        self.commands.clear()
        return taken


@sync
async def test_the_kitty_widget_uploads_once_and_frees_what_it_uploaded(monkeypatch):
    """One upload and one virtual placement per picture, whatever the pane does: shown again after a pane
    switch it is not uploaded again (textual-image re-uploaded on every render, never freeing the last); a
    new picture frees the old one, removing the widget (f8, a recomposed pane, quitting) frees its own, and
    after a suspend (the alternate screen, and kitty's pictures, are cleared) it is uploaded afresh."""
    from textual.app import App

    tgp_widget = kitty.kitty_widget()
    monkeypatch.setattr(ImageView, "sharp_widget", tgp_widget)
    monkeypatch.setattr("sd_explorer.tui.widgets.graphics.cell_pixels", lambda: (10, 20))
    sent = _Sent(monkeypatch)

    class Demo(App):
        CSS = "#view { width: 30; height: 20; }"

        def compose(self):
            yield ImageView(Image.new("RGB", (28, 28), "white"), caption="1 · no CFG", id="view")

    async with Demo().run_test(size=(40, 24)) as pilot:
        await pilot.pause()
        view = pilot.app.query_one("#view", ImageView)
        sharp = view.query_one(tgp_widget)
        first = sharp._renderable.terminal_image_id
        assert sent.take() == [(None, first, None), ("p", first, None)]
        view.display = False
        await pilot.pause()
        view.display = True
        await pilot.pause()
        assert sent.take() == [] and sharp._renderable.terminal_image_id == first
        view.image = Image.new("RGB", (28, 28), "black")
        await pilot.pause()
        second = sharp._renderable.terminal_image_id
        assert sent.take() == [("d", first, "I"), (None, second, None), ("p", second, None)]
        pilot.app.app_resume_signal.publish(pilot.app)
        await pilot.pause()
        third = sharp._renderable.terminal_image_id
        assert third != second and sent.take() == [(None, third, None), ("p", third, None)]
        await sharp.remove()
        await pilot.pause()
        assert sent.take() == [("d", third, "I")]


@sync
async def test_a_kitty_picture_stays_within_297_cells(monkeypatch):
    """Placeholder rows and columns are numbered with 297 diacritics: a wider box raised ValueError("Image to
    large to render") in the render and ended the app (seen: a one-cell sweep at kitty's font_size 3, 534x125)."""
    from textual.app import App

    tgp_widget = kitty.kitty_widget()
    monkeypatch.setattr(ImageView, "sharp_widget", tgp_widget)
    monkeypatch.setattr("sd_explorer.tui.widgets.graphics.cell_pixels", lambda: (3, 8))
    sent = _Sent(monkeypatch)

    class Demo(App):
        CSS = "#view { width: 400; height: 120; }"

        def compose(self):
            yield ImageView(Image.new("RGB", (280, 28), "white"), caption="wide", id="view")

    async with Demo().run_test(size=(410, 124)) as pilot:
        await pilot.pause()
        sharp = pilot.app.query_one(tgp_widget)
        assert (sharp.size.width, sharp.size.height) == (297, 11)  # 297 * 3 px by 11 * 8: the 10:1 kept
        assert sharp.region.x == (400 - 297) // 2
        placement = next(c for c in sent.commands if c.get("a") == "p")
        assert (placement["c"], placement["r"], placement["U"]) == (297, 11, 1)


def _start_xvfb(deadline: float):
    """A virtual X screen (``Xvfb -displayfd``): the process and its display once the server says it is ready."""
    import os
    import select
    import shutil
    import subprocess
    import time

    read, write = os.pipe()
    server = subprocess.Popen([shutil.which("Xvfb"), "-displayfd", str(write), "-screen", "0", "800x600x24",
                               "-nolisten", "tcp"], pass_fds=(write,), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    os.close(write)
    number = b""
    while not number.endswith(b"\n") and select.select([read], [], [], max(0.0, deadline - time.monotonic()))[0]:
        chunk = os.read(read, 16)
        if not chunk:
            break
        number += chunk
    os.close(read)
    if not number.strip():
        server.kill()
        pytest.fail("Xvfb did not come up")
    return server, f":{number.decode().strip()}"


def test_a_real_kitty_frees_what_the_widget_uploaded(tmp_path):
    """tests/kitty_probe.py in kitty under Xvfb (skipped without them; ``SD_EXPLORER_KITTY`` names another kitty):
    the version is read; in a kitty with placeholders (0.28+) a picture textual-image's cleanup "freed" is still
    there, and one the app's widget freed is gone; in an older kitty (Debian 12's 0.26.5) auto keeps half blocks."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    import time

    binary = os.environ.get("SD_EXPLORER_KITTY") or shutil.which("kitty")
    if not binary or not shutil.which("Xvfb"):
        pytest.skip("needs kitty and Xvfb (apt-get install kitty xvfb)")
    deadline = time.monotonic() + 120  # only a hang runs into it: the probe's answer is the state waited for
    server, display = _start_xvfb(deadline)
    out = tmp_path / "probe.json"
    probe = str(__import__("pathlib").Path(__file__).with_name("kitty_probe.py"))
    env = dict(os.environ, DISPLAY=display, LIBGL_ALWAYS_SOFTWARE="1")
    terminal = subprocess.Popen([binary, "--config", "NONE", "-o", "confirm_os_window_close=0", sys.executable,
                                 probe, str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not out.exists() and terminal.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not out.exists():
            why = terminal.stderr.read1().decode()[-500:] if terminal.poll() is not None else "timed out"
            pytest.fail(f"kitty gave no answer (exit {terminal.poll()}): {why}")
        found = json.loads(out.read_text())
    finally:
        for process in (terminal, server):
            process.terminate()
            process.wait(10)
    assert found["version"].startswith("kitty("), found
    if found["missing_placeholders"]:  # kitty < 0.28: U=1 is a malformed command there, never answered
        assert found["placement_answer"] == ""
        return
    assert found["stock_before_free"] == found["stock_after_free"] == "OK"  # textual-image 0.12 freed nothing
    assert found["ours_before_free"] == "OK"
    assert found["ours_after_free"].startswith("ENOENT")
