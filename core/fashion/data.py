"""Fashion-MNIST loading (IDX files, parquet, Hugging Face datasets) and batched preprocessing.

Every loader checks what it reads: a wrong magic number, a header that promises more bytes than the
file holds, or image/label counts that disagree raise ``UserError`` instead of loading part of a file.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import UserError

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
ENV_VAR = "SD_EXPLORER_FASHION_DATA"
_PREFIX = {"train": "train", "test": "t10k"}


@dataclass
class FashionData:
    """Images as one uint8 tensor ``[N, 28, 28]`` and labels as int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.dtype != torch.uint8:
            raise UserError(f"Fashion-MNIST images must be uint8 [N, H, W]; got {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise UserError(
                f"{self.source}: {len(self.images)} images but {len(self.labels)} labels; use matching files"
            )
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) > 9):
            raise UserError(f"{self.source}: labels must be 0-9; check the labels file")

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, held_out: int) -> tuple["FashionData", "FashionData"]:
        """(train, held-out): the last ``held_out`` examples are kept for evaluation."""
        if not 0 < held_out < len(self.labels):
            raise UserError(f"--held-out {held_out} must be between 1 and {len(self.labels) - 1} "
                            f"for {len(self.labels)} images.")
        cut = len(self.labels) - held_out
        return self.subset(0, cut), self.subset(cut)

    def subset(self, start: int, stop: int | None = None) -> "FashionData":
        """Images ``start:stop`` (e.g. a held-out tail for evaluation)."""
        return FashionData(self.images[start:stop], self.labels[start:stop], f"{self.source}[{start}:{stop}]")

    def class_counts(self) -> list[int]:
        """How many examples each of the ten classes has."""
        return torch.bincount(self.labels, minlength=10).tolist()


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        return raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"Cannot read {path}: {exc}; re-download the Fashion-MNIST file") from None


def parse_idx(data: bytes, expected_magic: int, name: str = "IDX data") -> np.ndarray:
    """Parse one IDX file's bytes (images: magic 2051, [N, rows, cols]; labels: magic 2049, [N])."""
    ndim = 3 if expected_magic == IMAGES_MAGIC else 1
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{name} is truncated ({len(data)} bytes, no complete header); re-download it")
    magic = struct.unpack(">i", data[:4])[0]
    if magic != expected_magic:
        kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
        raise UserError(f"{name} is not an IDX {kind} file (magic {magic}, expected {expected_magic})")
    dims = struct.unpack(f">{ndim}i", data[4:header])
    if any(d < 0 for d in dims):
        raise UserError(f"{name} has a negative dimension in its header {dims}; the file is corrupt")
    size = int(np.prod(dims, dtype=np.int64))
    present = len(data) - header
    if present < size:
        raise UserError(
            f"{name} is truncated: its header promises {dims[0]} items ({size} bytes) but only "
            f"{present} bytes follow; re-download it"
        )
    if present > size:
        raise UserError(f"{name} has {present - size} bytes after its {dims[0]} items; the file is corrupt")
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims).copy()


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """One IDX file (gzip or plain) with the expected ``magic`` number, as a uint8 array: the one reader."""
    path = Path(path)
    return parse_idx(_read_bytes(path), magic, path.name)


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"{folder} has no {stem}[.gz]; pass a folder with the Fashion-MNIST IDX files")


def load_idx_folder(folder: str | Path, split: str = "train") -> FashionData:
    """Load ``{train,t10k}-images-idx3-ubyte[.gz]`` and the matching labels file from ``folder``."""
    folder = Path(folder)
    prefix = _PREFIX[split]
    img_path = _find(folder, f"{prefix}-images-idx3-ubyte")
    lab_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(img_path, IMAGES_MAGIC)
    labels = read_idx(lab_path, LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise UserError(f"{img_path.name} holds {images.shape[1:]} images; Fashion-MNIST is 28x28")
    if len(images) != len(labels):
        raise UserError(
            f"{img_path.name} has {len(images)} images but {lab_path.name} has {len(labels)} labels; "
            "use files from the same download"
        )
    return FashionData(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), str(folder))


def _decode_image(value: object) -> np.ndarray:
    from PIL import Image

    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray)):
        with Image.open(io.BytesIO(value)) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8)
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("L"), dtype=np.uint8)
    return np.asarray(value, dtype=np.uint8)


def _from_rows(images: list, labels: list, source: str) -> FashionData:
    if len(images) != len(labels):
        raise UserError(f"{source}: {len(images)} images but {len(labels)} labels; the file is corrupt")
    try:
        arr = np.stack([_decode_image(v) for v in images]) if images else np.zeros((0, 28, 28), np.uint8)
    except Exception as exc:  # PIL raises many types for bad bytes
        raise UserError(f"{source}: an image cannot be decoded ({exc}); the file is corrupt") from None
    if arr.shape[1:] != (28, 28):
        raise UserError(f"{source}: images are {arr.shape[1:]}, Fashion-MNIST is 28x28")
    return FashionData(torch.from_numpy(arr), torch.tensor(np.asarray(labels, dtype=np.int64)), source)


def load_parquet(path: str | Path) -> FashionData:
    """Load a parquet file with ``image`` (PNG bytes or ``{"bytes": ...}``) and ``label`` columns."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise UserError(f"Cannot read parquet {path}: {exc}; pass a valid Fashion-MNIST parquet file") from None
    if "image" not in table.column_names or "label" not in table.column_names:
        raise UserError(f"{path} needs 'image' and 'label' columns; it has {table.column_names}")
    return _from_rows(table.column("image").to_pylist(), table.column("label").to_pylist(), str(path))


def load_hub(split: str = "train") -> FashionData:
    """``datasets.load_dataset("fashion_mnist")``, the chapter's way (uses the cache when offline)."""
    try:
        from datasets import load_dataset

        ds = load_dataset("fashion_mnist", split=split)
    except Exception as exc:
        raise UserError(
            f"Cannot load fashion_mnist from the Hugging Face hub or cache ({type(exc).__name__}); "
            "pass --data with a folder of IDX files or a parquet file"
        ) from None
    return _from_rows(list(ds["image"]), list(ds["label"]), "hf:fashion_mnist")


def load_fashion_mnist(source: str | Path | None = None, split: str = "train") -> FashionData:
    """Load Fashion-MNIST from a folder of IDX files, a parquet file, or (``None``) the hub/cache.

    ``None`` means ``$SD_EXPLORER_FASHION_DATA`` if that is set, else ``load_dataset("fashion_mnist")``.
    """
    if split not in _PREFIX:
        raise UserError(f"split must be 'train' or 'test', not {split!r}")
    if source is None or str(source) == "":
        source = os.environ.get(ENV_VAR) or None
    if source is None:
        return load_hub(split)
    path = Path(source).expanduser()
    if path.is_dir():
        return load_idx_folder(path, split)
    if path.is_file() and path.suffix == ".parquet":
        return load_parquet(path)
    if path.is_file():
        raise UserError(f"{path} is not a folder of IDX files or a .parquet file; pass one of those")
    raise UserError(f"{path} does not exist; pass --data with a folder of Fashion-MNIST IDX files")


def preprocess(
    images: torch.Tensor,
    flip: torch.Tensor | bool | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The chapter's transform on a batch, on the tensor's device: uint8 ``[B,28,28]`` -> ``[B,1,32,32]``.

    RandomHorizontalFlip (p=0.5; ``flip`` fixes the decision per image, ``None`` draws it from
    ``generator``), ToTensor ([0, 1]), Pad(2) with zeros, Normalize(0.5, 0.5) -> [-1, 1].
    """
    x = images.unsqueeze(1) if images.ndim == 3 else images
    x = x.float().div_(255.0)
    if flip is None:
        flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    if isinstance(flip, bool):
        x = x.flip(-1) if flip else x
    else:
        x = torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)
    x = F.pad(x, (2, 2, 2, 2), value=0.0)
    return x.sub_(0.5).div_(0.5)
