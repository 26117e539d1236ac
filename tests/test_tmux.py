"""The real app in a real terminal (tmux): type a prompt, start a sweep, read the screen until it is done.

Needs the ``tmux`` binary (CI: ``apt-get install -y tmux``); skipped cleanly without it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_screen(session: str, needle: str, timeout: float = 300.0) -> str:
    """The screen once it shows ``needle``; ``timeout`` only catches a hang (CI shares its CPUs)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(session)
        if needle in text:
            return text
        time.sleep(0.25)
    raise AssertionError(f"{needle!r} never appeared; the screen was:\n{text}")


def test_sweep_in_tmux(tmp_path):
    session = f"sdx-{uuid.uuid4().hex[:8]}"
    cmd = (f"cd {ROOT} && HF_HUB_OFFLINE=1 XDG_CONFIG_HOME={tmp_path} {sys.executable} -m sd_explorer.tui "
           f"--model tiny --device cpu --out {tmp_path / 'out'} --prompt ''")
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", cmd)
    try:
        wait_screen(session, "tiny (sd1, cpu, fp32)")
        tmux("send-keys", "-t", session, "-l", "A photograph of a puppy")
        text = wait_screen(session, "puppy</w>")
        assert "5/75 tokens" in text and "8853" in text
        tmux("send-keys", "-t", session, "F3")
        wait_screen(session, "ctrl+r runs the sweep")
        # fewer steps keep it quick on a CPU: select the steps field's text and replace it
        for keys in (["Tab"], ["Tab"], ["End"], ["BSpace"], ["BSpace"], ["-l", "3"]):
            tmux("send-keys", "-t", session, *keys)
            time.sleep(0.3)  # keys apart, as typed; the check below waits for the screen, not for time
        wait_screen(session, "▊  3 ")
        tmux("send-keys", "-t", session, "C-r")
        text = wait_screen(session, "done: seed 0")
        assert "1 · no CFG" in text and "12" in text
        tmux("send-keys", "-t", session, "C-s")
        wait_screen(session, "Saved")
        assert list((tmp_path / "out").glob("sweep-*.png"))
        tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if session not in subprocess.run(["tmux", "ls"], capture_output=True, text=True).stdout:
                break
            time.sleep(0.25)
        else:
            raise AssertionError("the app did not quit on ctrl+q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
