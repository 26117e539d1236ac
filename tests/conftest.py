"""Shared fixtures: hermetic caches, no network, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FASHION_DIR = SHARED / "data" / "fashion-mnist-8k"
CLIP_BPE = SHARED / "data" / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz"

# Tests never touch the network, and never write into the user's real caches.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _hermetic_cache(tmp_path_factory):
    os.environ["SD_EXPLORER_CACHE"] = str(tmp_path_factory.mktemp("sd-explorer-cache"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))
    yield


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not FASHION_DIR.is_dir():
        pytest.skip(f"{FASHION_DIR} is not here")
    return FASHION_DIR
