"""Fashion-MNIST parsing (IDX gz/raw, parquet), bad files, and preprocessing equivalence."""

from __future__ import annotations

import gzip
import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from sd_explorer.core.errors import UserError
from sd_explorer.core.fashion.chapter import chapter_transform
from sd_explorer.core.fashion.data import ENV_VAR, IMAGES_MAGIC, load_fashion_mnist, preprocess, read_idx


def idx_images(arr: np.ndarray, magic: int = 2051, count: int | None = None) -> bytes:
    n = len(arr) if count is None else count
    return struct.pack(">iiii", magic, n, arr.shape[1], arr.shape[2]) + arr.astype(np.uint8).tobytes()


def idx_labels(arr: np.ndarray, magic: int = 2049, count: int | None = None) -> bytes:
    n = len(arr) if count is None else count
    return struct.pack(">ii", magic, n) + arr.astype(np.uint8).tobytes()


def write_pair(folder, images: bytes, labels: bytes, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, raw in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([0, 3, 9, 1, 7], dtype=np.uint8)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_round_trip(tmp_path, small, gz):
    imgs, labs = small
    write_pair(tmp_path, idx_images(imgs), idx_labels(labs), gz)
    data = load_fashion_mnist(tmp_path)
    assert data.images.dtype == torch.uint8 and data.images.shape == (5, 28, 28)
    assert torch.equal(data.images, torch.from_numpy(imgs))
    assert data.labels.tolist() == [0, 3, 9, 1, 7]


@pytest.mark.parametrize("gz", [True, False])
def test_wrong_magic(tmp_path, small, gz):
    imgs, labs = small
    write_pair(tmp_path, idx_images(imgs, magic=2049), idx_labels(labs), gz)
    with pytest.raises(UserError, match="magic"):
        load_fashion_mnist(tmp_path)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_images(tmp_path, small, gz):
    imgs, labs = small
    write_pair(tmp_path, idx_images(imgs, count=6), idx_labels(labs), gz)  # header promises 6
    with pytest.raises(UserError, match="truncated"):
        load_fashion_mnist(tmp_path)


def test_truncated_header_and_labels(tmp_path, small):
    imgs, labs = small
    (tmp_path / "short").write_bytes(b"\x00\x00\x08")  # not even a whole header
    with pytest.raises(UserError, match="truncated"):
        read_idx(tmp_path / "short", IMAGES_MAGIC)
    write_pair(tmp_path, idx_images(imgs), idx_labels(labs, count=9), gz=True)
    with pytest.raises(UserError, match="truncated"):
        load_fashion_mnist(tmp_path)


def test_count_mismatch(tmp_path, small):
    imgs, labs = small
    write_pair(tmp_path, idx_images(imgs), idx_labels(labs[:4]), gz=True)
    with pytest.raises(UserError, match="5 images but .* 4 labels"):
        load_fashion_mnist(tmp_path)


def test_trailing_bytes_and_corrupt_gzip(tmp_path, small):
    imgs, labs = small
    write_pair(tmp_path, idx_images(imgs) + b"\x00" * 10, idx_labels(labs), gz=False)
    with pytest.raises(UserError, match="corrupt"):
        load_fashion_mnist(tmp_path)
    bad = tmp_path / "gzbad"
    write_pair(bad, idx_images(imgs), idx_labels(labs), gz=True)
    raw = (bad / "train-images-idx3-ubyte.gz").read_bytes()
    (bad / "train-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError):
        load_fashion_mnist(bad)


def test_missing_things(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_fashion_mnist(tmp_path / "nope")
    with pytest.raises(UserError, match="no train-images"):
        load_fashion_mnist(tmp_path)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UserError, match="parquet"):
        load_fashion_mnist(tmp_path / "x.txt")


def test_parquet(tmp_path, small):
    import pyarrow as pa
    import pyarrow.parquet as pq

    imgs, labs = small

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a, mode="L").save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    table = pa.table({"image": [png(a) for a in imgs], "label": labs.astype(np.int64).tolist()})
    pq.write_table(table, tmp_path / "train.parquet")
    data = load_fashion_mnist(tmp_path / "train.parquet")
    assert torch.equal(data.images, torch.from_numpy(imgs)) and data.labels.tolist() == labs.tolist()
    pq.write_table(pa.table({"label": [1, 2]}), tmp_path / "bad.parquet")
    with pytest.raises(UserError, match="'image' and 'label'"):
        load_fashion_mnist(tmp_path / "bad.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserError, match="Cannot read parquet"):
        load_fashion_mnist(tmp_path / "junk.parquet")


def test_shared_subset_and_env_var(fashion_dir, monkeypatch):
    data = load_fashion_mnist(fashion_dir)
    assert len(data) == 8192 and data.images.shape[1:] == (28, 28)
    assert all(700 < c < 900 for c in data.class_counts())
    monkeypatch.setenv(ENV_VAR, str(fashion_dir))
    assert len(load_fashion_mnist()) == 8192
    held = data.subset(8192 - 1024)
    assert len(held) == 1024 and torch.equal(held.labels, data.labels[-1024:])


def test_hub_offline_gives_user_error(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="--data"):
        load_fashion_mnist(None)


def test_preprocess_matches_chapter_transform(fashion_dir):
    data = load_fashion_mnist(fashion_dir).subset(0, 64)
    flips = torch.arange(64) % 3 == 0
    ours = preprocess(data.images, flip=flips)
    ref = torch.stack([
        chapter_transform(Image.fromarray(a, mode="L"), flip=bool(f))
        for a, f in zip(data.images.numpy(), flips)
    ])
    assert ours.shape == (64, 1, 32, 32)
    assert torch.allclose(ours, ref, atol=1e-6)
    assert float(ours.min()) == -1.0 and float(ours.max()) <= 1.0
    assert torch.all(ours[:, :, :2, :] == -1.0)  # the padding is black


def test_preprocess_random_flip_rate():
    img = torch.zeros(2000, 28, 28, dtype=torch.uint8)
    img[:, :, 0] = 255  # a bright left column: flipped images have it on the right
    x = preprocess(img, generator=torch.Generator().manual_seed(0))
    flipped = (x[:, 0, 2:30, 29] > 0).float().mean().item()
    assert 0.45 < flipped < 0.55


def test_package_import_is_cheap():
    import subprocess
    import sys

    code = "import sys; import sd_explorer.core.fashion as fashion; print('torch' in sys.modules, fashion.CLASS_NAMES[7])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # the lazy attribute pulls in the data module (and torch) only on first use
    assert out[-1] == "Sneaker"
    code = "import sys, sd_explorer.core.fashion; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
