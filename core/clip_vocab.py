"""CLIP's real BPE tokenizer, built offline from the vocabulary file an installed package ships.

Stable Diffusion 1.x (and SDXL's first text encoder) use OpenAI CLIP's tokenizer: 49,408 ids,
``<|startoftext|>`` = 49406, ``<|endoftext|>`` = 49407. The byte-pair merges live in
``bpe_simple_vocab_16e6.txt.gz``, which registry packages ship (``open_clip_torch`` among them).
We never commit that file: we find it (``find_bpe_file``), check its SHA-256, and turn it into the
``vocab.json`` + ``merges.txt`` pair that ``transformers.CLIPTokenizer`` reads, cached in the user's
cache directory.

``make`` does not install ``open_clip_torch`` (with ``--no-deps`` it would sit in the venv with unmet
requirements, torchvision and timm, and pip would print a resolver ERROR on every later install): it
downloads the wheel and keeps only the vocabulary, ``python -m sd_explorer.core.clip_vocab --from-wheel WHEEL``,
into ``<venv>/share/sd-explorer/``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import sys
import zipfile
from functools import lru_cache
from pathlib import Path
import argparse
import atexit
import shutil
import tempfile

from .errors import UserError
from .atomic import write_bytes

BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
#: Packages known to ship the file, in the order we look (found without importing them).
PACKAGES = ("open_clip", "clip")
ENV_VAR = "SD_EXPLORER_CLIP_BPE"
VOCAB_SIZE = 49408
BOS_ID, EOS_ID = 49406, 49407
MODEL_MAX_LENGTH = 77


def shared_bpe_path() -> Path:
    """Where ``make`` keeps the vocabulary: the environment's ``share/sd-explorer/`` folder."""
    return Path(sys.prefix) / "share" / "sd-explorer" / BPE_FILENAME


def find_bpe_file() -> Path:
    """The BPE file: ``$SD_EXPLORER_CLIP_BPE`` if set, else the environment's shared copy (``make``),
    else the copy inside an installed package (``pip install --no-deps open_clip_torch``)."""
    if env := os.environ.get(ENV_VAR):
        path = Path(env).expanduser()
        if not path.is_file():
            raise UserError(f"{ENV_VAR}={env} does not exist: point it at {BPE_FILENAME} or unset it.")
        return path
    if shared_bpe_path().is_file():
        return shared_bpe_path()
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)  # locates the package without running its code
        for folder in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(folder) / BPE_FILENAME
            if candidate.is_file():
                return candidate
    raise UserError(
        "CLIP's vocabulary was not found: run `pip install --no-deps open_clip_torch` "
        f"(it ships {BPE_FILENAME}) or set {ENV_VAR} to the file."
    )


def extract_from_wheel(wheel: str | Path, dest: Path | None = None) -> Path:
    """Copy the vocabulary out of a downloaded wheel (e.g. ``open_clip_torch``'s) to ``dest``
    (default: ``shared_bpe_path()``), checking its SHA-256 first; written atomically."""
    dest = Path(dest) if dest is not None else shared_bpe_path()
    try:
        with zipfile.ZipFile(wheel) as z:
            names = [n for n in z.namelist() if n.endswith("/" + BPE_FILENAME)]
            if not names:
                raise UserError(f"{wheel} does not contain {BPE_FILENAME}: download open_clip_torch's wheel.")
            data = z.read(names[0])
    except (OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"{wheel} is not a readable wheel ({exc}): download it again.") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != BPE_SHA256:
        raise UserError(f"{names[0]} in {wheel} is not CLIP's vocabulary (SHA-256 {digest[:12]}…).")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes(dest, data)


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars)))


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """The inverse map: a BPE piece's character -> the byte it spells (to read pieces as text)."""
    return {char: byte for byte, char in _bytes_to_unicode().items()}


def vocab_and_merges(bpe_path: Path) -> tuple[dict[str, int], list[str]]:
    """Rebuild CLIP's token -> id table and merge list exactly as OpenAI's SimpleTokenizer does."""
    data = bpe_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != BPE_SHA256:
        raise UserError(
            f"{bpe_path} is not CLIP's vocabulary (SHA-256 {digest[:12]}…): reinstall open_clip_torch."
        )
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    units = list(_bytes_to_unicode().values())
    tokens = units + [u + "</w>" for u in units] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    if len(tokens) != VOCAB_SIZE:
        raise UserError(f"{bpe_path} gave {len(tokens)} tokens, expected {VOCAB_SIZE}: reinstall it.")
    return {tok: i for i, tok in enumerate(tokens)}, merges


def cache_dir() -> Path:
    if env := os.environ.get("SD_EXPLORER_CACHE"):
        return Path(env)
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # e.g. a bare GPU image; the XDG default is right on Linux
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sd-explorer"
    return Path(user_cache_dir("sd-explorer"))


def tokenizer_folder() -> Path:
    """A folder holding ``vocab.json`` and ``merges.txt``, written once, atomically."""
    folder = cache_dir() / f"clip-tokenizer-{BPE_SHA256[:12]}"
    if (folder / "tokenizer_config.json").is_file():
        return folder
    vocab, merges = vocab_and_merges(find_bpe_file())
    try:
        _write_tokenizer(folder, vocab, merges)
    except (OSError, UserError):  # an unwritable cache (or HOME): the environment, not the model
        try:
            fallback = Path(tempfile.mkdtemp(prefix="sd-explorer-tokenizer-"))
            atexit.register(shutil.rmtree, fallback, True)
            _write_tokenizer(fallback, vocab, merges)
        except (OSError, UserError):
            raise UserError(f"cannot write CLIP's tokenizer into the cache folder {folder} nor a temporary folder: "
                            "set SD_EXPLORER_CACHE to a writable folder, or fix the permissions of HOME.") from None
        return fallback
    return folder


def _write_tokenizer(folder: Path, vocab: dict, merges: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
        "special_tokens_map.json": json.dumps(
            {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
             "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
        ),
        # written last: its presence marks the folder complete
        "tokenizer_config.json": json.dumps(
            {"model_max_length": MODEL_MAX_LENGTH, "tokenizer_class": "CLIPTokenizer",
             "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
             "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
        ),
    }

    for name, text in files.items():
        write_bytes(folder / name, text.encode("utf-8"))


@lru_cache(maxsize=1)
def clip_tokenizer():
    """SD 1.x's tokenizer (``transformers.CLIPTokenizer``), from the installed vocabulary."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(tokenizer_folder()))


def main(argv: list[str] | None = None) -> None:
    """``python -m sd_explorer.core.clip_vocab --from-wheel WHEEL [--dest FILE]``: keep CLIP's vocabulary from a wheel."""
    ap = argparse.ArgumentParser(prog="python -m sd_explorer.core.clip_vocab", description=main.__doc__)
    ap.add_argument("--from-wheel", required=True, metavar="WHEEL", help="a downloaded open_clip_torch wheel")
    ap.add_argument("--dest", default=None, help=f"where to write it (default: {shared_bpe_path()})")
    args = ap.parse_args(argv)
    print(extract_from_wheel(args.from_wheel, Path(args.dest) if args.dest else None))


if __name__ == "__main__":
    from .errors import run_main

    run_main(main)
