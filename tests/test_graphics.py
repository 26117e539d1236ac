"""The ``graphics`` setting picks the image renderer (tui.widgets.graphics), and the sharp
(Kitty/Sixel) child of ImageView is sized and fed as seen in a real xterm -ti vt340."""

from __future__ import annotations

from argparse import Namespace

import pytest
from PIL import Image

from sd_explorer.core.errors import UserError
from tests.test_tui_support import sync
from sd_explorer.tui.config import load_settings
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
    chosen = {mode: choose_image_widget(_settings(tmp_path, mode).graphics, {"TERM": "xterm"}, _Tty()) for mode in MODES}
    sixel = sixel_widget()  # textual-image's Sixel widget, palette first (tui.widgets.sixel)
    assert issubclass(sixel, widgets.SixelImage)
    assert chosen == {"cells": None, "auto": sixel, "sixel": sixel, "kitty": widgets.TGPImage}
    monkeypatch.setattr(renderables, "Image", renderables.TGPImage)
    assert choose_image_widget("auto", {"TERM": "xterm-kitty"}, _Tty()) is widgets.TGPImage
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
