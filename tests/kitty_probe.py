"""Run inside a real terminal (kitty): asks its version the way the app does, shows a picture the way
the app's Kitty widget does, and asks the terminal whether the picture still exists after textual-image's
stock cleanup and after the app's. Writes what it found as JSON to the file named by argv[1] (written
last, whole, so a waiting test can poll for it). Used by tests/test_graphics.py and bench/kitty_check.sh.

The answers are read with the graphics protocol's own replies: ``a=p,i=N`` (a placement) answers
``OK`` while picture N exists and ``ENOENT`` once it is freed.
"""

from __future__ import annotations

import json
import os
import select
import sys
import termios
import time
import tty
from pathlib import Path

from PIL import Image
from rich.console import Console

from sd_explorer.tui.widgets import kitty


def _ask(fd: int, sequence: str, timeout: float = 2.0) -> str:
    """Write ``sequence`` and read the graphics reply (``ESC _ G ... ESC \\``), or "" after ``timeout``."""
    os.write(sys.__stdout__.fileno(), sequence.encode())
    reply, deadline = b"", time.monotonic() + timeout
    while not reply.endswith(b"\x1b\\") and (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        reply += os.read(fd, 4096)
    return reply.decode("utf-8", "replace")


def _exists(fd: int, image_id: int) -> str:
    """The terminal's answer to placing picture ``image_id`` (``OK`` / ``ENOENT:...`` / "" for none)."""
    reply = _ask(fd, f"\x1b_Ga=p,i={image_id},U=1,c=1,r=1\x1b\\")
    return reply.split(";", 1)[1].rstrip("\x1b\\") if ";" in reply else ""


def main(out: Path) -> None:
    found: dict[str, object] = {"version": kitty.ask_version(timeout=2.0)}
    found["missing_placeholders"] = kitty.missing_placeholders()
    widget = kitty.kitty_widget()
    from textual_image.renderable.tgp import Image as StockImage  # loaded by kitty_widget (which asked the terminal)
    picture = Image.new("RGB", (40, 40), "red")
    console = Console(file=sys.__stdout__, force_terminal=True, color_system="truecolor", width=20)
    fd = sys.__stdin__.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd, termios.TCSANOW)
    try:
        if found["missing_placeholders"]:  # U=1 is a malformed command there: no answer to wait for four times
            ours = widget._Renderable(picture, 4, 2)
            console.print(ours)
            found["placement_answer"] = _exists(fd, ours.terminal_image_id)
            return
        stock = StockImage(picture, 4, 2)  # textual-image's own renderable
        console.print(stock)
        found["stock_before_free"] = _exists(fd, stock.terminal_image_id)
        stock_id = stock.terminal_image_id
        stock.cleanup()
        found["stock_after_free"] = _exists(fd, stock_id)
        ours = widget._Renderable(picture, 4, 2)
        console.print(ours)
        ours_id = ours.terminal_image_id
        found["ours_before_free"] = _exists(fd, ours_id)
        ours.cleanup()
        found["ours_after_free"] = _exists(fd, ours_id)
        found["free_command"] = kitty.free_command(ours_id)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
        partial = out.with_suffix(".partial")
        partial.write_text(json.dumps(found), encoding="utf-8")
        partial.rename(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
