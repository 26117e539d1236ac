"""Fashion-MNIST loading (IDX files, parquet, Hugging Face datasets) and batched preprocessing.

Every loader checks what it reads: a wrong magic number, a header that promises more bytes than the
file holds, or image/label counts that disagree raise ``UserError`` instead of loading part of a file.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .. import hub
from ..hub import OFFLINE_HOWTO, offline
from ..paths import expand

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


#: Fashion-MNIST has 70,000 images; a header that declares more is refused before its body is read
MAX_ITEMS = 1_000_000
IMAGE_SIDE = 28


def _header(head: bytes, expected_magic: int, name: str) -> tuple[int, ...]:
    """The dimensions an IDX header declares, checked before any of the body is read: the magic number,
    no negative sizes, 28x28 images, at most ``MAX_ITEMS`` items (so the size cannot overflow or exhaust memory)."""
    ndim = 3 if expected_magic == IMAGES_MAGIC else 1
    if len(head) < 4 + 4 * ndim:
        raise UserError(f"{name} is truncated ({len(head)} bytes, no complete header); re-download it")
    magic = struct.unpack(">i", head[:4])[0]
    if magic != expected_magic:
        kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
        raise UserError(f"{name} is not an IDX {kind} file (magic {magic}, expected {expected_magic})")
    dims = struct.unpack(f">{ndim}i", head[4:4 + 4 * ndim])
    if any(d < 0 for d in dims):
        raise UserError(f"{name} has a negative dimension in its header {dims}; the file is corrupt")
    if ndim == 3 and dims[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise UserError(f"{name}'s header declares {dims[1]}x{dims[2]} images; Fashion-MNIST's are 28x28: "
                        "pass the original files")
    if dims[0] > MAX_ITEMS:
        raise UserError(f"{name}'s header declares {dims[0]} items, more than {MAX_ITEMS:,}: it is not a "
                        "Fashion-MNIST file; re-download it")
    return dims


def _body(dims: tuple[int, ...], body: bytes, name: str) -> np.ndarray:
    size = math.prod(dims)  # Python integers: no overflow
    if len(body) < size:
        raise UserError(
            f"{name} is truncated: its header promises {dims[0]} items ({size} bytes) but only "
            f"{len(body)} bytes follow; re-download it"
        )
    if len(body) > size:
        raise UserError(f"{name} has bytes after its {dims[0]} items; the file is corrupt")
    return np.frombuffer(body, dtype=np.uint8, count=size).reshape(dims).copy()


def read_idx(path: str | Path, expected_magic: int) -> np.ndarray:
    """One IDX file, gzip-compressed or not (the one IDX reader), streamed: the header is checked first, then exactly the bytes it
    declares are read (one more proves there is no trailing junk). A gzip bomb or a corrupt stream is refused
    without inflating more than the declared size."""
    path = Path(path)
    header = 4 + 4 * (3 if expected_magic == IMAGES_MAGIC else 1)
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as fh:
            dims = _header(fh.read(header), expected_magic, path.name)
            body = fh.read(math.prod(dims) + 1)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise UserError(f"Cannot read {path}: {exc}; re-download the Fashion-MNIST file") from None
    return _body(dims, body, path.name)


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


#: what every "no data" error ends with: how to point at local files
DATA_HOWTO = ("point --data (the training pane's data field) at a folder holding train-images-idx3-ubyte[.gz] and "
              "train-labels-idx1-ubyte[.gz], or at a .parquet file with image and label columns "
              f"(or set {ENV_VAR})")


def hub_cached() -> bool:
    """Whether the ``datasets`` cache seems to hold fashion_mnist (checked without importing ``datasets``)."""
    try:  # no home directory (HOME unset, or it vanished): no cache either
        home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface").expanduser()
        roots = [Path(os.environ["HF_DATASETS_CACHE"]).expanduser()] if os.environ.get("HF_DATASETS_CACHE") else []
        roots += [home / "datasets", Path(os.environ.get("HF_HUB_CACHE") or home / "hub").expanduser()]
    except (RuntimeError, KeyError):
        return False
    names = ("fashion_mnist", "zalando-datasets___fashion_mnist", "datasets--fashion_mnist",
             "datasets--zalando-datasets--fashion_mnist")
    return any((root / name).is_dir() for root in roots for name in names)


def load_hub(split: str = "train") -> FashionData:
    """``datasets.load_dataset("fashion_mnist")``, the chapter's way, failing in seconds without it.

    Offline (``HF_HUB_OFFLINE``) with nothing cached fails at once; a Hub that cannot be reached
    (3 s probe) means the cache or nothing, instead of the library's minutes of retries.
    """
    cached = hub_cached()
    if offline() and not cached:
        raise UserError(f"fashion_mnist is not in the Hugging Face cache and HF_HUB_OFFLINE is set: {DATA_HOWTO}")
    local_only = offline() or not hub.reachable()  # through the module: tests stand in for the probe
    if local_only and not cached:
        raise UserError(f"Cannot download fashion_mnist: the Hugging Face hub cannot be reached (no network) "
                        f"and it is not cached; {DATA_HOWTO}")
    try:
        import datasets
        from datasets import load_dataset

        was = datasets.config.HF_HUB_OFFLINE
        datasets.config.HF_HUB_OFFLINE = was or local_only  # unreachable: the cache only, no retries
        try:
            ds = load_dataset("fashion_mnist", split=split)
        finally:
            datasets.config.HF_HUB_OFFLINE = was
    except Exception as exc:
        why = "offline, from the cache" if local_only else "from the Hugging Face hub or cache"
        raise UserError(f"Cannot load fashion_mnist {why} ({type(exc).__name__}); {DATA_HOWTO}; "
                        f"{OFFLINE_HOWTO}") from None
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
    path = expand(source, "--data")
    if path.is_dir():
        return load_idx_folder(path, split)
    if path.is_file() and path.suffix == ".parquet":
        return load_parquet(path)
    if path.is_file():
        raise UserError(f"{path} is not a folder of IDX files or a .parquet file; {DATA_HOWTO}")
    raise UserError(f"{path} does not exist; {DATA_HOWTO}")


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
