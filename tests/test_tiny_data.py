"""IDX reading, the 28x28 -> 64x64 RGB mapping and back, and the caption generator."""

from __future__ import annotations

import gzip
import random
import struct

import numpy as np
import pytest
import torch

from sd_explorer.core.errors import UserError
from sd_explorer.core.tiny import captions
from sd_explorer.core.fashion.data import read_idx
from sd_explorer.core.tiny.data import load_fashion, to_fashion, to_model_images


def write_idx(folder, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    """Synthetic Fashion-MNIST files in the original IDX layout."""
    folder.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    with opener(folder / f"train-images-idx3-ubyte{suffix}", "wb") as fh:
        fh.write(struct.pack(">IIII", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes())
    with opener(folder / f"train-labels-idx1-ubyte{suffix}", "wb") as fh:
        fh.write(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [True, False])
def test_reads_idx_files_gzip_or_plain(tmp_path, gz):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 10, 20)
    write_idx(tmp_path, images, labels, gz)
    data = load_fashion(tmp_path)
    assert np.array_equal(data.images, images) and np.array_equal(data.labels, labels)
    train, held = data.split(5)
    assert len(train.labels) == 15 and np.array_equal(held.images, images[15:])


def test_bad_files_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_fashion(tmp_path / "missing")
    with pytest.raises(UserError, match="no train-images"):
        load_fashion(tmp_path)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(struct.pack(">IIII", 1234, 1, 28, 28)))
    with pytest.raises(UserError, match="magic"):
        read_idx(bad, 2051)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(struct.pack(">IIII", 2051, 2, 28, 28) + bytes(100)))
    with pytest.raises(UserError, match="truncated"):
        read_idx(short, 2051)
    with pytest.raises(UserError, match="held-out"):
        load_fashion(_folder_with(tmp_path / "ok", 4)).split(10)


def _folder_with(folder, n):
    write_idx(folder, np.zeros((n, 28, 28)), np.zeros(n))
    return folder


def test_real_data_reads(fashion_dir):
    data = load_fashion(fashion_dir)
    assert data.images.shape == (8192, 28, 28) and set(np.unique(data.labels)) == set(range(10))


def test_model_images_are_padded_upsampled_rgb_and_map_back():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 10:18, 4:24] = 255
    x = to_model_images(img)
    assert x.shape == (1, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert (x[0, 0, :4] == -1).all(), "the 2-px black padding becomes 4 px at 64x64"
    back = to_fashion(x)
    assert back.shape == (1, 1, 32, 32)
    inner = back[0, 0, 2:30, 2:30]
    assert torch.allclose(inner[12:16, 8:20], torch.ones(4, 12), atol=1e-5)
    assert torch.allclose(inner[:8], -torch.ones(8, 28), atol=1e-5)


def test_captions_name_their_class_and_some_are_empty():
    rng = random.Random(0)
    for label in range(10):
        texts = captions.all_captions(label)
        assert len(texts) >= 20 and len(set(texts)) == len(texts)
        names = captions.PHRASES[label]
        assert all(any(n in t for n in names) for t in texts)
    assert "a photo of a sneaker" in captions.all_captions(7)
    assert "an ankle boot" in captions.all_captions(9)
    assert "product shot of a dress" in captions.all_captions(3)
    drawn = [captions.caption(rng.randrange(10), rng) for _ in range(4000)]
    assert 0.08 < drawn.count("") / len(drawn) < 0.12
    with pytest.raises(ValueError):
        captions.all_captions(10)


def test_caption_table_matches_the_pipelines_tokenization():
    from sd_explorer.core.clip_vocab import clip_tokenizer
    from sd_explorer.core.tiny.grounding import single_table

    table = single_table(clip_tokenizer())  # checks its piecewise ids against the tokenizer's own
    assert table.ids.shape[1] == 77 and table.ids.shape == table.marks.shape
    assert table.texts[table.empty] == "" and table.ids[table.empty, 0] == 49406
    assert (table.ids[table.empty, 1:] == 49407).all()
    row = int(table.rows[7, captions.all_captions(7).index("a photo of a sneaker")])
    assert table.texts[row] == "a photo of a sneaker"
    assert table.ids[row].tolist()[:7] == [49406, 320, 1125, 539, 320, 24781, 49407]
    assert table.marks[row].tolist()[:7] == [0, 0, 0, 0, 0, 1, 0]  # only "sneaker" is grounded
