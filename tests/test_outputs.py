"""Outputs: settings inside the PNG, numbered names, no overwrites, nothing half-written."""

from __future__ import annotations

import os
import threading

import pytest
from PIL import Image

from sd_explorer.core.errors import UserError
from sd_explorer.core.outputs import make_grid, safe_stem, save_png


def test_png_carries_its_parameters(tmp_path):
    path = save_png(Image.new("RGB", (8, 8), "red"), tmp_path, "a cat", "a cat\nSteps: 3, Seed: 1")
    assert path.name == "a-cat-0001.png"
    assert Image.open(path).text["parameters"] == "a cat\nSteps: 3, Seed: 1"
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)


def test_never_overwrites_and_leaves_no_temp_files(tmp_path):
    paths = [save_png(Image.new("RGB", (4, 4), (i, 0, 0)), tmp_path, "x") for i in range(3)]
    assert [p.name for p in paths] == ["x-0001.png", "x-0002.png", "x-0003.png"]
    assert [Image.open(p).getpixel((0, 0))[0] for p in paths] == [0, 1, 2]
    assert sorted(os.listdir(tmp_path)) == ["x-0001.png", "x-0002.png", "x-0003.png"]


def test_two_writers_at_once_never_collide(tmp_path):
    results, lock = [], threading.Lock()

    def writer(k):
        for i in range(10):
            p = save_png(Image.new("RGB", (4, 4), (k, i, 0)), tmp_path, "race")
            with lock:
                results.append((p, (k, i)))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len({p for p, _ in results}) == 40
    for path, (k, i) in results:
        assert Image.open(path).getpixel((0, 0))[:2] == (k, i)


@pytest.mark.parametrize("prompt", ["../../etc/passwd", "/abs/path", "a/b\\c", "..", "", "🐶🐱", "x" * 500])
def test_names_from_prompts_stay_inside_the_folder(tmp_path, prompt):
    path = save_png(Image.new("RGB", (2, 2)), tmp_path, prompt)
    assert path.parent == tmp_path and len(path.name) < 60
    assert "/" not in safe_stem(prompt) and ".." not in safe_stem(prompt)


def test_read_only_folder_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        target = tmp_path / "file-not-folder"
        target.write_text("x")
        out = target / "sub"
    else:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    with pytest.raises(UserError, match="writable"):
        save_png(Image.new("RGB", (2, 2)), out, "x")


def test_grid_has_one_cell_per_image_and_captions(tmp_path):
    images = [Image.new("RGB", (64, 64), c) for c in ("red", "green", "blue", "white")]
    grid = make_grid(images, ["1 · no CFG", "2", "4", "12"])
    assert grid.size == (4 * 128, 128 + 22)
    assert grid.getpixel((10, 10)) == (255, 0, 0) and grid.getpixel((128 * 3 - 10, 10)) == (0, 0, 255)
    band = grid.crop((0, 128, 128, 150)).convert("L")
    assert min(band.getdata()) < 128  # caption text was drawn
