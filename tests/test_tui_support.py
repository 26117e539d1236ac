"""Shared helpers for the TUI tests (no tests here): a deterministic app on ``tiny``, waiting on conditions."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from sd_explorer.tui.app import ExplorerApp
from sd_explorer.tui.config import Settings

SIZE = (80, 24)
PROMPT = "A photograph of a puppy"


def sync(test):
    """Run an ``async def`` test with ``asyncio.run`` (no pytest async plugin needed)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


def make_app(tmp: Path | str, **overrides) -> ExplorerApp:
    """The app on tiny, CPU fp32, 2 steps, writing into ``tmp`` (no timings shown)."""
    values = dict(model="tiny", device="cpu", dtype="fp32", steps=2, prompt=PROMPT,
                  output_dir=str(tmp), log_file=str(Path(tmp) / "worker.log"))
    values.update(overrides)
    size = values.pop("size", "")
    return ExplorerApp(Settings(**values), show_timings=False, size=size)


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 300.0, what: str = "") -> None:
    """Let the app run until ``condition()`` holds. ``timeout`` only catches a hang: a state that never comes;
    it is generous because CI and users share CPUs (a job that takes 20 s alone can take 100 s at load 6)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            await pilot.pause()
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")


def write_gradient(path: Path, size: int = 64) -> Path:
    """A deterministic RGB test image."""
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path
