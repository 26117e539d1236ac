"""Issue 26, class 3 (and 5): the environment is named when it is at fault, output paths are checked before
any work, refusals write nothing, and streams that close early or cannot encode end cleanly.

Subprocess tests run the installed entry point (``python -m sd_explorer.tui.entry``) as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from tests.test_hostile_input import FAST

ROOT = Path(__file__).resolve().parents[1]


def cli(*argv: str, env: dict | None = None, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "sd_explorer.tui.entry", *argv], capture_output=True,
                          timeout=timeout, env=full, cwd=ROOT, **kw)


def one_error_line(proc: subprocess.CompletedProcess, match: str) -> None:
    err = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip() and not ln.startswith("loading ")]
    assert proc.returncode == 2, err
    assert len(err) == 1 and err[0].startswith("sd-explorer: error: "), err
    assert match in err[0] and "Traceback" not in err[0], err


# -- the one output-path check ----------------------------------------------------------------------

def screenshot_cases(tmp: Path) -> list[tuple[Path, str]]:
    existing = tmp / "old.svg"
    existing.write_text("keep me")
    blocker = tmp / "a-file"
    blocker.write_text("x")
    os.mkfifo(tmp / "fifo")
    return [(existing, "already exists"), (tmp, "is a folder"), (blocker / "shot.svg", "is a file, not a folder"),
            (Path("/dev/null"), "is a device"), (tmp / "fifo", "FIFO"),
            (Path("~nosuchuser-26/shot.svg"), "not a home directory")]


def test_screenshot_paths_are_checked_before_any_work(tmp_path):
    for path, match in screenshot_cases(tmp_path):
        proc = cli("--screenshot", str(path), "--pane", "tokens", timeout=120)
        one_error_line(proc, match)
    assert (tmp_path / "old.svg").read_text() == "keep me"  # never overwritten


def test_check_output_file_names_permission_and_read_only(tmp_path, monkeypatch):
    from sd_explorer.core import paths
    from sd_explorer.core.errors import UserError

    monkeypatch.setattr(paths.os, "access", lambda p, mode: False)  # as a non-root user in a 0555 folder
    with pytest.raises(UserError, match="permission denied or read-only"):
        paths.check_output_file(tmp_path / "new" / "shot.svg", "--screenshot")
    assert not (tmp_path / "new").exists()  # the check creates nothing


@FAST
@given(name=st.text(min_size=1, max_size=40))
def test_output_path_check_accepts_or_explains_any_name(tmp_path_factory, name):
    from sd_explorer.core.errors import UserError
    from sd_explorer.core.paths import check_output_file

    folder = tmp_path_factory.mktemp("p")
    try:
        path = check_output_file(folder / name, "--screenshot")
    except (UserError, ValueError) as exc:  # ValueError: a NUL byte, which no path may hold
        assert isinstance(exc, UserError) or "null" in str(exc).lower()
        return
    assert not path.exists()


# -- streams and the last-resort guard ----------------------------------------------------------------

def test_a_pipe_closed_early_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "sd_explorer.tui.entry", "tokens", "a boot " * 3000],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "internal error" not in err and "Traceback" not in err and "BrokenPipe" not in err, err


def test_an_ascii_only_locale_prints_escapes():
    proc = cli("tokens", "a boot \U0001f462", env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"\\U0001f462" in proc.stdout


def test_the_guard_survives_a_non_utf8_argv(tmp_path, monkeypatch, capsys):
    from sd_explorer.core import cli as core_cli

    def broken(args):
        raise KeyError("boom")

    monkeypatch.setenv("SD_EXPLORER_STATE", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["sd-explorer", "tokens", "caf\udce9"])  # a Latin-1 byte as Python passes it
    monkeypatch.setattr(core_cli, "cmd_tokens", broken)
    parser_args = ["tokens", "caf\udce9"]
    assert core_cli.main(parser_args) == 1
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and str(tmp_path / "errors.log") in err
    assert "caf\\udce9" in (tmp_path / "errors.log").read_text()


def test_a_home_that_is_not_a_folder_still_loads_tiny(tmp_path):
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    env = {"HOME": str(home), "SD_EXPLORER_CACHE": "", "SD_EXPLORER_STATE": "", "XDG_CACHE_HOME": "",
           "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": ""}
    full = {k: v for k, v in {**os.environ, **env}.items() if v}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "sd_explorer.tui.entry", "generate", "a boot", "--steps", "1",
                           "--device", "cpu", "--out", str(out)], capture_output=True, timeout=300, env=full, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(list(out.glob("*.png"))) == 1


def test_settings_file_errors_say_error_and_name_what_is_there(tmp_path):
    folder = tmp_path / "conf.toml"
    folder.mkdir()
    one_error_line(cli("--config", str(folder), "--screenshot", str(tmp_path / "s.svg"), timeout=120), "is a folder")
    big = tmp_path / "big.toml"
    big.write_text('prompt = "' + "x" * 300_000 + '"\n')
    one_error_line(cli("--config", str(big), "--screenshot", str(tmp_path / "s.svg"), timeout=120), "at most 256 KB")
    long = tmp_path / "long.toml"
    long.write_text('prompt = "' + "x" * 30_000 + '"\n')
    one_error_line(cli("--config", str(long), "--screenshot", str(tmp_path / "s.svg"), timeout=120), "more than 20000")
    assert not (tmp_path / "s.svg").exists()
