"""Sixel images that xterm draws right: every colour register is defined before the first pixel.

textual-image's encoder defines each colour register where it is first used. xterm (``-ti vt340``)
draws the bands that come before a register's *next* definition in the colour the register had
before, so a picture whose first bands use one colour came out with a wrong-coloured stripe on top
(seen as a grey band over every sweep cell, ``docs/sixel-sweep.png`` before this fix). libsixel and
img2sixel put the whole palette first; ``palette_first`` rewrites textual-image's output that way
(same pixels, same registers, the definitions moved ahead of the data).
"""

from __future__ import annotations

import re
from functools import cache

#: a colour register definition in RGB (``#N;2;R;G;B``), the only form textual-image writes
_DEFINITION = re.compile(r"#(\d+);2;(\d+);(\d+);(\d+)")
#: raster attributes (``"Pan;Pad;Ph;Pv``) right after the ``q`` that starts the sixel data
_RASTER = re.compile(r'"\d+;\d+;\d+;\d+')


def palette_first(sixels: str) -> str:
    """``sixels`` with every colour definition moved in front of the pixel data, each use a plain select."""
    start = sixels.find("q")
    if start < 0:
        return sixels
    head, body = sixels[: start + 1], sixels[start + 1 :]
    raster = _RASTER.match(body)
    attributes = raster.group(0) if raster else ""
    data = body[len(attributes):]
    definitions: dict[str, str] = {}
    for match in _DEFINITION.finditer(data):
        definitions.setdefault(match.group(1), match.group(0))
    data = _DEFINITION.sub(lambda m: f"#{m.group(1)}", data)
    return head + attributes + "".join(definitions.values()) + data


@cache
def sixel_widget():
    """textual-image's Sixel widget, encoding through ``palette_first``; the stock widget if its
    internals (0.12: ``_ImageSixelImpl._image_to_sixels``) are not there."""
    from textual_image.widget import sixel

    impl = getattr(sixel, "_ImageSixelImpl", None)
    if impl is None or not hasattr(impl, "_image_to_sixels"):
        return sixel.Image

    class PaletteFirstImpl(impl):
        def _image_to_sixels(self, image, sixel_options=None, background=None) -> str:
            return palette_first(super()._image_to_sixels(image, sixel_options, background))

    class SixelImage(sixel.Image, Renderable=getattr(sixel, "_NoopRenderable", None)):
        """``textual_image.widget.SixelImage`` whose colour registers are all defined up front."""

        def compose(self):
            yield PaletteFirstImpl(self.image, self._sixel_options)

    return SixelImage
