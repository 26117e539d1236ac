"""CLIP's vocabulary file: found (env var, the environment's shared copy, an installed package), checked
by SHA-256, and kept out of a downloaded wheel by ``make`` without installing that wheel's package."""

import gzip
import hashlib
import stat
import subprocess
import sys
import zipfile

import pytest

from sd_explorer.core import clip_vocab
from sd_explorer.core.clip_vocab import BPE_FILENAME, BPE_SHA256, extract_from_wheel, find_bpe_file, vocab_and_merges
from sd_explorer.core.errors import UserError
from tests.conftest import CLIP_BPE, ROOT

needs_bpe = pytest.mark.skipif(not CLIP_BPE.is_file(), reason="needs ../shared/data/clip-bpe")


def _wheel(path, name, data):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("open_clip/__init__.py", "")
        z.writestr(name, data)
    return path


def test_the_vocabulary_found_is_clips_and_matches_the_shared_file():
    path = find_bpe_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BPE_SHA256
    if CLIP_BPE.is_file():
        assert path.read_bytes() == CLIP_BPE.read_bytes()
    vocab, merges = vocab_and_merges(path)
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407


def test_a_wrong_vocabulary_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / BPE_FILENAME
    fake.write_bytes(gzip.compress(b"#version\nh e\n"))
    with pytest.raises(UserError, match="not CLIP's vocabulary"):
        vocab_and_merges(fake)
    monkeypatch.setenv("SD_EXPLORER_CLIP_BPE", str(tmp_path / "missing.gz"))
    with pytest.raises(UserError, match="does not exist"):
        find_bpe_file()


@needs_bpe
def test_the_vocabulary_is_kept_out_of_a_wheel_and_found_in_the_environment(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / "open_clip_torch-3.3.0-py3-none-any.whl", f"open_clip/{BPE_FILENAME}",
                   CLIP_BPE.read_bytes())
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.delenv("SD_EXPLORER_CLIP_BPE", raising=False)
    out = extract_from_wheel(wheel)
    assert out == tmp_path / "venv" / "share" / "sd-explorer" / BPE_FILENAME
    assert out.read_bytes() == CLIP_BPE.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) & 0o044 == 0o044  # readable by others, as any installed file
    assert find_bpe_file() == out  # before any installed package
    monkeypatch.setattr(clip_vocab, "PACKAGES", ())
    assert find_bpe_file() == out


def test_a_wheel_without_clips_vocabulary_is_refused(tmp_path):
    with pytest.raises(UserError, match="does not contain"):
        extract_from_wheel(_wheel(tmp_path / "a.whl", "open_clip/other.txt", b"x"), tmp_path / "out.gz")
    with pytest.raises(UserError, match="not CLIP's vocabulary"):
        extract_from_wheel(_wheel(tmp_path / "b.whl", f"open_clip/{BPE_FILENAME}", b"x"), tmp_path / "out.gz")
    (tmp_path / "c.whl").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable wheel"):
        extract_from_wheel(tmp_path / "c.whl", tmp_path / "out.gz")
    assert not (tmp_path / "out.gz").exists()


def test_the_command_says_one_line_for_a_bad_wheel(tmp_path):
    (tmp_path / "c.whl").write_bytes(b"not a zip")
    out = subprocess.run([sys.executable, "-m", "sd_explorer.core.clip_vocab", "--from-wheel", str(tmp_path / "c.whl")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"error: {tmp_path / 'c.whl'} is not a readable wheel (File is not a zip file): download it again."]


def test_the_makefile_keeps_the_vocabulary_and_installs_no_open_clip_package():
    make = (ROOT / "Makefile").read_text()
    assert "pip download" in make and "clip_vocab --from-wheel" in make
    assert "install -q --no-deps \"open_clip_torch" not in make
