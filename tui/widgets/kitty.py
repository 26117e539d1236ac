"""Kitty graphics as a real kitty needs them (issue 27, item 10; seen in kitty 0.26.5 and 0.35.2 under Xvfb).

textual-image 0.12 draws a Kitty picture by uploading it, making a *virtual* placement (``U=1``) and
writing Unicode placeholder cells (U+10EEEE plus row/column diacritics, the image id in the foreground
colour) where it should show. Three things were off in a real kitty, and are mended here:

- Its cleanup sends ``a=d,I=<id>``: with no ``d`` key kitty reads ``d=a`` (the placements *visible on
  screen*), which skips virtual placements, so no picture was ever freed: every upload (each live-preview
  step, each pane switch) stayed in the terminal until its 320 MB quota evicted the oldest.
  ``free_command`` sends ``a=d,d=I,i=<id>``, which frees the picture and its placements; the widget frees
  its picture when the picture changes or the widget goes (a pane recomposed, f8, quitting).
- It uploaded the picture again on every render (each time a pane was shown again); the widget keeps the
  upload while the picture and its size stay, and uploads afresh only after a suspend (the alternate
  screen, and kitty's pictures with it, is cleared when the app comes back).
- A picture over 297 cells wide or tall (``MAX_CELLS``: the diacritics that number rows and columns) raised
  ``ValueError`` inside the render and ended the app (a one-cell sweep at kitty's ``font_size 3``);
  ``tui.widgets.image_view`` keeps the box within it.

Kitty before 0.28 (Debian 12's 0.26.5) has no Unicode placeholders: it answers the graphics query, but logs
"Malformed GraphicsCommand control block, invalid key character: 0x55" for ``U=1`` and shows the placeholder
cells as boxes. ``ask_version`` reads the terminal's XTVERSION (asked with textual-image's own query, before
Textual starts) so that ``auto`` keeps the half blocks there and a forced ``kitty`` says why it shows boxes.
"""

from __future__ import annotations

import os
import re
import select
import sys
import time
from functools import cache

try:  # the terminal is asked in cbreak mode (POSIX)
    import termios
    import tty
except ImportError:  # pragma: no cover - Windows: no version asked, Kitty graphics go by the query alone
    termios = tty = None

#: the first kitty with Unicode placeholders, which textual-image's renderer draws with
PLACEHOLDERS_SINCE = (0, 28, 0)
#: rows or columns one placeholder picture may span (textual-image numbers them with 297 diacritics)
MAX_CELLS = 297
#: XTVERSION (``CSI > 0 q``), then primary device attributes (``CSI c``), which every terminal answers
VERSION_QUERY = "\x1b[>0q\x1b[c"
_XTVERSION = re.compile(r"\x1bP>\|([^\x1b]*)\x1b\\")
_DA1 = re.compile(r"\x1b\[\?[0-9;]*c")
_KITTY = re.compile(r"kitty\((\d+)\.(\d+)\.(\d+)")

_answer: str | None = None  #: the XTVERSION text once asked ("" when the terminal did not say)


def free_command(image_id: int) -> str:
    """Kitty's command that frees picture ``image_id`` and all its placements, virtual ones too (no reply)."""
    return f"\x1b_Ga=d,d=I,i={image_id},q=2\x1b\\"


def parse_version(reply: str) -> str:
    """The terminal's name and version from its XTVERSION reply (``kitty(0.26.5)``), or ``""``."""
    match = _XTVERSION.search(reply)
    return match.group(1) if match else ""


def missing_placeholders(version: str | None = None) -> str:
    """Why this terminal cannot show textual-image's Kitty pictures (a kitty older than 0.28), or ``""``
    (any other answer, or none: the graphics query decides then). ``version``: the XTVERSION text,
    by default the one ``ask_version`` got."""
    version = _answer if version is None else version
    match = _KITTY.match(version or "")
    if match is None or tuple(map(int, match.groups())) >= PLACEHOLDERS_SINCE:
        return ""
    return f"kitty {'.'.join(match.groups())} has no Unicode placeholders, which 0.28+ has"


def ask_version(timeout: float = 0.5) -> str:
    """Ask the terminal its XTVERSION, once (only before Textual starts or while it is suspended: Textual
    reads stdin otherwise); the DA1 query after it ends the wait in a terminal that does not say."""
    global _answer
    if _answer is not None:
        return _answer
    _answer = ""
    stdin, stdout = sys.__stdin__, sys.__stdout__
    if termios is None or stdin is None or stdout is None or not (stdin.isatty() and stdout.isatty()):
        return _answer
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    reply = ""
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        stdout.write(VERSION_QUERY)
        stdout.flush()
        deadline = time.monotonic() + timeout
        while not _DA1.search(reply) and (left := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], left)[0]:
                break
            reply += os.read(fd, 256).decode("utf-8", "replace")
    except OSError:
        pass
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
    _answer = parse_version(reply)
    return _answer


@cache
def kitty_widget():
    """textual-image's Kitty (TGP) widget that frees its pictures and uploads each one once."""
    import textual_image.renderable.tgp as tgp
    import textual_image.widget as widgets

    class FreeingImage(tgp.Image):
        """textual-image's placeholder renderable whose cleanup frees the picture in the terminal."""

        def cleanup(self) -> None:
            if self.terminal_image_id:
                tgp._send_tgp_message(a="d", d="I", i=self.terminal_image_id, q=2)  # = free_command
                self.terminal_image_id = None

    class TGPImage(widgets.TGPImage, Renderable=FreeingImage):
        """``textual_image.widget.TGPImage`` that frees what it uploaded and re-renders without re-uploading."""

        max_cells = MAX_CELLS  #: ``ImageView.sharp_box`` keeps the box within this many cells each way

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._drawn_size: tuple | None = None  # the styled size the kept renderable was made for

        def on_mount(self) -> None:
            self.app.app_resume_signal.subscribe(self, self._forget_upload)

        def on_unmount(self) -> None:
            self._free()

        def _free(self) -> None:
            if self._renderable is not None:
                self._renderable.cleanup()
                self._renderable = None

        def _forget_upload(self, _app) -> None:
            """Back from a suspend: kitty cleared the alternate screen's pictures, so upload afresh."""
            self._renderable = None
            self.refresh()

        def render(self):
            if not self._image:
                return ""
            size = self._get_styled_size()
            if self._renderable is None or self._drawn_size != size:
                self._free()
                self._renderable = self._Renderable(self._image, *size)
                self._drawn_size = size
            return self._renderable

    return TGPImage
