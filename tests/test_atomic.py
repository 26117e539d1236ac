"""``core.atomic``: the one writer. Free names by link (never a replace), stale temp files cleaned,
ordinary file modes, the output folder checked before work; ``fashion train`` stops on SIGINT/SIGTERM
with a resumable checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from sd_explorer.core import atomic
from sd_explorer.core.errors import UserError
from tests.conftest import ROOT


def test_a_name_taken_between_check_and_publish_is_never_overwritten(tmp_path, monkeypatch):
    """The forced race of the attack: the exists-check says free, another writer has published meanwhile."""
    (tmp_path / "ckpt-000010.safetensors").write_bytes(b"first writer")
    monkeypatch.setattr(Path, "exists", lambda self: False)  # every check is stale
    path = atomic.write_new(tmp_path, atomic.then_numbered("ckpt-000010", ".safetensors"),
                            lambda tmp: tmp.write_bytes(b"second writer"))
    assert path.name == "ckpt-000010-1.safetensors" and path.read_bytes() == b"second writer"
    assert (tmp_path / "ckpt-000010.safetensors").read_bytes() == b"first writer"


def test_two_processes_write_checkpoints_of_one_step_into_one_folder(tmp_path):
    code = ("import sys, torch\n"
            "from sd_explorer.core.fashion.checkpoint import save_checkpoint, load_checkpoint\n"
            "m = torch.nn.Linear(2, 2)\n"
            "for i in range(8): print(save_checkpoint(sys.argv[2], m, None, {'step': 5, 'epoch': 0, "
            "'step_in_epoch': 0, 'seed': int(sys.argv[1])}))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k), str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True) for k in (1, 2)]
    outs = [p.communicate(timeout=240)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs[0] + outs[1])) == 16 and len(list(tmp_path.glob("ckpt-000005*.safetensors"))) == 16
    from sd_explorer.core.fashion.checkpoint import load_checkpoint

    for k, paths in zip((1, 2), outs):
        assert all(load_checkpoint(p)["seed"] == k for p in paths)  # nobody's file was replaced by the other's
    assert not list(tmp_path.glob(".tmp-*"))


def test_stale_temp_files_of_dead_writers_are_removed_on_the_next_write(tmp_path):
    from sd_explorer.core.outputs import save_png

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{atomic.TMP_PREFIX}{atomic._host()}-{dead.pid}-abc123.png"
    stale.write_bytes(b"half a PNG, its writer was killed")
    alive = tmp_path / f"{atomic.TMP_PREFIX}{atomic._host()}-{os.getppid()}-def456.png"  # a running process's
    alive.write_bytes(b"being written")
    path = save_png(Image.new("RGB", (4, 4)), tmp_path, "x")
    assert path.is_file() and not stale.exists() and alive.exists()
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # an ordinary file, not mkstemp's 0600


def test_output_folder_is_checked_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write to"):
        atomic.check_writable(blocker / "sub")
    assert atomic.check_writable(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert not (tmp_path / "new").exists()  # nothing created: a later refusal leaves no empty folder behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the probe leaves nothing
    (tmp_path / "there").mkdir()
    assert atomic.check_writable(tmp_path / "there") == tmp_path / "there"
    assert not [p for p in (tmp_path / "there").iterdir()]


def test_a_refused_command_leaves_no_out_folder(tmp_path):
    """Issue 26, class 5: the right line, and no empty --out folder behind it."""
    import subprocess
    import sys

    for args in (["fashion", "train", "--data", str(tmp_path / "nothing"), "--epochs", "1", "--out"],
                 ["fashion", "sample", "--checkpoint", str(tmp_path / "file"), "--out"]):
        (tmp_path / "file").write_text("not a checkpoint")
        out = subprocess.run([sys.executable, "-m", "sd_explorer.core", *args, str(tmp_path / "out")],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and "sd-explorer: error:" in out.stderr, out.stderr
        assert not (tmp_path / "out").exists(), args


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_stop_training_with_a_resumable_checkpoint(tmp_path, fashion_dir, sig, code):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sd_explorer.core", "fashion", "train", "--data", str(fashion_dir), "--tiny", "--limit", "256",
           "--batch-size", "64", "--epochs", "200", "--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(out.glob("ckpt-*.safetensors")):
            time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    last = [ln for ln in err.splitlines() if "resume with" in ln]
    assert len(last) == 1 and "Traceback" not in err, err
    resume = last[0].split("resume with: ", 1)[1].split()
    ckpt = resume[resume.index("--resume") + 1]
    from sd_explorer.core.fashion.checkpoint import load_checkpoint

    state = load_checkpoint(ckpt)
    assert state["step"] > 0 and Path(ckpt).parent == out
    assert resume[:3] == ["sd-explorer", "fashion", "train"] and "--data" in resume and "--limit" in resume


def test_write_folder_publishes_a_whole_folder_or_nothing(tmp_path):
    """``write_folder``: the one folder writer (the tiny model's build): replaced only when asked, a failed
    write leaves the old folder as it was and no staging folder behind, the folder gets an ordinary mode."""
    out = tmp_path / "model"
    atomic.write_folder(out, lambda d: (d / "a.txt").write_text("one"))
    assert (out / "a.txt").read_text() == "one" and (out.stat().st_mode & 0o777) == 0o777 & ~atomic._umask()
    with pytest.raises(UserError, match="--overwrite"):
        atomic.write_folder(out, lambda d: (d / "b.txt").write_text("two"))

    def broken(d):
        (d / "half.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic.write_folder(out, broken, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    atomic.write_folder(out, lambda d: (d / "b.txt").write_text("two"), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "no staging or old folders left behind"
