"""An image in the terminal: rich-pixels half-block cells (two pixels per cell, visible in SVG).

The image is scaled to fit the widget's content area (aspect kept, nearest-neighbour so small
latent previews stay crisp), centred, with its caption under it (wrapped onto two lines where the cell is narrow). Renders are cached per
(image, size), so re-layouts are cheap.

With Kitty/Sixel graphics (``sharp_widget``, chosen by ``tui.widgets.graphics``) a
``textual_image`` child draws the image instead, sized here to whole cells with the aspect kept in
pixels and handed the image already scaled (nearest-neighbour) to exactly those pixels.
Seen in xterm -ti vt340 (Sixel) and in kitty 0.35.2 (Kitty graphics, ``bench/kitty_check.sh``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from rich.console import Group
from rich.align import Align
from rich.text import Text
from rich_pixels import Pixels
from textual.reactive import reactive
from textual.widget import Widget

from . import graphics


def to_pil(image: Any) -> Image.Image | None:
    """PIL image from a PIL image or a uint8/float numpy array ``[h, w, 3]`` / ``[h, w]``."""
    if image is None or isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return Image.fromarray(arr)


def fit(size: tuple[int, int], cells: tuple[int, int]) -> tuple[int, int]:
    """Pixel size that fits ``cells`` (width, height in cells; 2 px per cell vertically), aspect kept."""
    w, h = size
    max_w, max_h = max(1, cells[0]), max(2, cells[1] * 2)
    scale = min(max_w / w, max_h / h)
    new_w, new_h = max(1, int(w * scale)), max(2, int(h * scale))
    return new_w, new_h - new_h % 2


class ImageView(Widget):
    """Shows one image (PIL or numpy) with a caption; empty until an image is set."""

    DEFAULT_CSS = """
    ImageView {
        width: 1fr;
        height: 1fr;
        min-height: 4;
        content-align: center middle;
    }
    ImageView:focus { background: $boost; }
    ImageView.-selected { outline: round $accent; }
    ImageView > .sharp { width: 1; height: 1; }
    ImageView > .caption { width: 1fr; height: 1; content-align: center middle; }
    """

    image: reactive[Any] = reactive(None, layout=False)
    caption: reactive[str] = reactive("")
    placeholder: reactive[str] = reactive("")

    def __init__(self, image: Any = None, caption: str = "", *, placeholder: str = "",
                 focusable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.can_focus = focusable
        self.set_reactive(ImageView.image, to_pil(image))
        self.set_reactive(ImageView.caption, caption)
        self.set_reactive(ImageView.placeholder, placeholder)
        self._cache: tuple[int, tuple[int, int], Pixels] | None = None
        self._sharp_key: tuple | None = None  # (image, box in cells, cell pixels) shown by the sharp child

    #: a ``textual_image`` widget class for Kitty/Sixel graphics (``tui.widgets.graphics``), or None
    sharp_widget: type | None = None

    def compose(self):
        if self.sharp_widget is not None:
            from textual.widgets import Label

            yield Label(self.caption, classes="caption")

    async def switch_renderer(self) -> None:
        """Draw with the class's ``sharp_widget`` as it is now (the graphics mode switched at run time)."""
        await self.remove_children()
        self._sharp_key = None
        if self.sharp_widget is not None:
            from textual.widgets import Label

            await self.mount(Label(self.caption, classes="caption"))
            self.on_mount()
        self.refresh()

    def on_mount(self) -> None:
        if self.sharp_widget is not None:
            self.styles.layout = "vertical"
            self.styles.align = ("center", "middle")
            self._place_sharp()

    def on_resize(self) -> None:
        if self.sharp_widget is not None:
            self._place_sharp()

    def sharp_box(self, image: Image.Image, cell_px: tuple[int, int]) -> tuple[int, int]:
        """Cells (width, height) the sharp image takes: the largest box that fits above the caption
        with the image's aspect kept in pixels (terminal cells are not square), and within the sharp
        widget's ``max_cells`` each way where it has one (Kitty placeholders number at most 297)."""
        width, height = self.area()
        rows = max(1, height - 1)  # the caption line
        limit = getattr(self.sharp_widget, "max_cells", None)
        if limit:
            width, rows = min(width, limit), min(rows, limit)
        (iw, ih), (cw, ch) = image.size, cell_px
        scale = min(width * cw / iw, rows * ch / ih)
        return max(1, min(width, int(iw * scale / cw))), max(1, min(rows, int(ih * scale / ch)))

    def _place_sharp(self) -> None:
        """Size the sharp child to its box, centre it across the view, and hand it the image scaled to the
        box's pixels (nearest-neighbour, so latent previews stay crisp); nothing is re-encoded if nothing changed."""
        if not self.is_mounted:
            return
        if self.image is None or 0 in self.area():
            key = None
        else:
            cell_px = graphics.cell_pixels()
            key = (self.image, self.sharp_box(self.image, cell_px), cell_px)
        old = self._sharp_key
        sharp = next(iter(self.query(".sharp")), None)
        if key is not None:
            # the vertical layout's ``align`` centres the children as one block, as wide as the caption (the
            # view's width): a box narrower than the view (a tall view, one sweep cell) sat at its left edge
            left = (self.area()[0] - key[1][0]) // 2
            if sharp is not None and sharp.styles.margin.left != left:
                sharp.styles.margin = (0, 0, 0, left)
        if key is old or (key and old and key[0] is old[0] and key[1:] == old[1:]):
            return
        self._sharp_key = key
        if key is None:
            if sharp is not None:
                sharp.image = None
            return
        (bw, bh), (cw, ch) = key[1], key[2]
        picture = self.image.convert("RGB").resize((bw * cw, bh * ch), Image.Resampling.NEAREST)
        if sharp is None:
            # mounted with the first image, not composed: a textual_image Sixel widget composed with
            # the app left every label of its pane with a transparent text colour (xterm -ti vt340)
            sharp = self.sharp_widget(picture, classes="sharp")
            sharp.styles.width, sharp.styles.height = bw, bh
            sharp.styles.margin = (0, 0, 0, left)
            self.mount(sharp, before=0)
            return
        sharp.styles.width, sharp.styles.height = bw, bh
        sharp.image = picture

    def validate_image(self, image: Any) -> Image.Image | None:
        return to_pil(image)

    def watch_image(self, image: Image.Image | None) -> None:
        self._cache = None
        if self.sharp_widget is not None:
            self._place_sharp()

    def watch_caption(self, caption: str) -> None:
        if self.sharp_widget is not None and self.is_mounted:
            self.query_one(".caption").update(caption)

    def _pixels(self, image: Image.Image, cells: tuple[int, int]) -> Pixels:
        key = (id(image), cells)
        if self._cache is None or self._cache[:2] != key:
            px = fit(image.size, cells)
            resized = image.convert("RGB").resize(px, Image.Resampling.NEAREST)
            self._cache = (*key, Pixels.from_image(resized))
        return self._cache[2]

    def area(self) -> tuple[int, int]:
        """Cells the image may use (width, height incl. the caption line)."""
        return self.content_region.size.width, self.content_region.size.height

    def caption_lines(self, width: int) -> list[Text]:
        """The caption, centred, wrapped onto at most two lines (the second cut with an ellipsis): a
        narrow cell at 80 columns shows ``c0`` / ``-0.49..0.33`` rather than a cut ``c0 -0.49..0.…``."""
        if not self.caption:
            return []
        width = max(1, width)
        lines = Text(self.caption).wrap(self.app.console, width, justify="center", overflow="ellipsis")
        if len(lines) <= 2:
            return list(lines)
        rest = " ".join(line.plain.strip() for line in lines[1:])
        return [lines[0], Text(rest, justify="center", no_wrap=True, overflow="ellipsis")]

    def render(self):
        if self.sharp_widget is not None:
            return ""  # the child widget draws the image
        width, height = self.area()
        caption = self.caption_lines(width) if height > 2 else [
            Text(self.caption, justify="center", no_wrap=True, overflow="ellipsis")]
        if self.image is None:
            text = Text(self.placeholder or " ", style="dim", justify="center")
            return Group(Align.center(text, vertical="middle", height=max(1, height - len(caption))), *caption)
        rows = max(1, height - len([line for line in caption if self.caption]))
        pixels = self._pixels(self.image, (width, rows))
        return Group(Align.center(pixels), *caption) if self.caption else Align.center(pixels)
