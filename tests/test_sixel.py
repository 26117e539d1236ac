"""Sixel data with the whole palette first (xterm drew a wrong-coloured stripe otherwise)."""

import re

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("textual_image")
from textual_image._sixel import image_to_sixels  # noqa: E402

from sd_explorer.tui.widgets.sixel import palette_first, sixel_widget  # noqa: E402

DEFINITION = re.compile(r"#(\d+);2;\d+;\d+;\d+")


def _picture(seed: int = 0) -> Image.Image:
    """8x8 blocks of six greys with a black top row, scaled as a sweep cell is (nearest-neighbour)."""
    blocks = (np.random.default_rng(seed).integers(0, 6, (8, 8)) * 51).astype(np.uint8)
    blocks[0] = 0
    return Image.fromarray(blocks).convert("RGB").resize((290, 280), Image.Resampling.NEAREST)


def _selects_and_data(sixels: str) -> str:
    return DEFINITION.sub(lambda m: f"#{m.group(1)}", sixels.split("q", 1)[1])


def test_every_register_is_defined_before_the_first_pixel():
    stock = image_to_sixels(_picture())
    fixed = palette_first(stock)
    assert stock.index("#0;2;0;0;0") < stock.index("~") < stock.index("#1;2;")  # stock: defined where used
    body = fixed.split("q", 1)[1]
    first_pixel = re.search(r"[?-~!$-]", body.split("#", 1)[1]).start() + len(body.split("#", 1)[0]) + 1
    definitions = DEFINITION.findall(fixed)
    assert len(definitions) == len(set(definitions)) == len(DEFINITION.findall(stock))
    assert all(m.end() <= first_pixel for m in DEFINITION.finditer(body))
    assert fixed.startswith(stock.split("q", 1)[0] + 'q"1;1;290;280#')  # raster attributes stay first
    assert fixed.endswith("\x1b\\")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_pixels_and_their_registers_are_unchanged(seed):
    """Only the definitions move: the fixed data, palette taken off, is the stock data with plain selects."""
    stock = image_to_sixels(_picture(seed))
    fixed = palette_first(stock)
    raster = '"1;1;290;280'
    stock_body, fixed_body = stock.split("q", 1)[1], fixed.split("q", 1)[1]
    palette = "".join(m.group(0) for m in DEFINITION.finditer(stock_body))
    assert fixed_body == raster + palette + _selects_and_data(stock)[len(raster):]
    assert len(DEFINITION.findall(stock_body)) > 3  # the picture has several greys


def test_the_widget_encodes_through_palette_first():
    from textual_image.widget import SixelImage

    widget = sixel_widget()
    assert issubclass(widget, SixelImage) and widget is sixel_widget()
    impl = next(iter(widget(_picture()).compose()))
    out = impl._image_to_sixels(_picture())
    assert out == palette_first(image_to_sixels(_picture()))
