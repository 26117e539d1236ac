"""Shared fixtures: hermetic caches, no network, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
#: the GPU machine gets no ../shared: bench/gpu_session.sh points this at a carried copy
FASHION_DIR = Path(os.environ.get("SD_EXPLORER_FASHION_DATA") or SHARED / "data" / "fashion-mnist-8k")
CLIP_BPE = SHARED / "data" / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz"

# Tests never touch the network, and never write into the user's real caches.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _hermetic_cache(tmp_path_factory):
    os.environ["SD_EXPLORER_CACHE"] = str(tmp_path_factory.mktemp("sd-explorer-cache"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))
    os.environ["SD_EXPLORER_STATE"] = str(tmp_path_factory.mktemp("sd-explorer-state"))  # core.crash's log
    yield


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not FASHION_DIR.is_dir():
        pytest.skip(f"{FASHION_DIR} is not here")
    return FASHION_DIR


@pytest.fixture(scope="session")
def sd1_folder(tmp_path_factory) -> Path:
    """A small SD 1.x-shaped pipeline saved with save_pretrained."""
    from tests.sd_factory import save_pipeline

    return save_pipeline(tmp_path_factory.mktemp("sd1") / "model", "sd1")


@pytest.fixture(scope="session")
def sd2v_folder(tmp_path_factory) -> Path:
    """A small SD 2.x-shaped, v-prediction pipeline."""
    from tests.sd_factory import save_pipeline

    return save_pipeline(tmp_path_factory.mktemp("sd2v") / "model", "sd2v")


@pytest.fixture(scope="session")
def sd1(sd1_folder):
    from sd_explorer.core.models import load_model

    return load_model(str(sd1_folder), device="cpu")


@pytest.fixture(scope="session")
def sd1_f64(sd1_folder):
    """float64, so that batch-size-dependent rounding (amplified by guidance) cannot hide a logic bug."""
    import torch

    from sd_explorer.core.models import load_model

    model = load_model(str(sd1_folder), device="cpu")
    for module in (model.unet, model.vae, model.text_encoder):
        module.double()
    model.dtype = torch.float64
    return model


def pytest_collection_modifyitems(config, items):
    """The one place GPU tests are skipped: every test marked ``gpu`` needs CUDA (``@pytest.mark.gpu``)."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (a test marked gpu)")
    for item in gpu:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def sdxl_folder(tmp_path_factory) -> Path:
    """A small SDXL-base-shaped pipeline (two text encoders, text_time conditioning)."""
    from tests.sd_factory import save_sdxl_pipeline

    return save_sdxl_pipeline(tmp_path_factory.mktemp("sdxl") / "model")


@pytest.fixture(scope="session")
def sdxl(sdxl_folder):
    """The SDXL-shaped model in float64."""
    import torch

    from sd_explorer.core.models import load_model

    model = load_model(str(sdxl_folder), device="cpu")
    for module in (model.unet, model.vae, model.text_encoder, model.text_encoder_2):
        module.double()
    model.dtype = torch.float64
    return model


@pytest.fixture
def snap_compare(snapshot, request):
    """pytest-textual-snapshot's ``snap_compare``, comparing the screenshots cell by cell (``tests/svg_cells.py``):
    characters and layout exactly, colours within the last bits that float arithmetic varies by between machines.
    The plugin's HTML report still shows every comparison; a mismatch prints the first difference."""
    import inspect
    import pickle

    import pytest_textual_snapshot as plugin
    from rich.console import Console
    from textual._doc import take_svg_screenshot

    from tests.svg_cells import difference

    class CellSnapshot(plugin.SVGImageExtension):
        def matches(self, *, serialized_data, snapshot_data) -> bool:
            if snapshot_data is None or serialized_data == snapshot_data:
                return serialized_data == snapshot_data
            reason = difference(str(snapshot_data), str(serialized_data))
            if reason:
                print(f"snapshot differs: {reason}")
            return reason is None

    snapshot = snapshot.use_extension(CellSnapshot)

    def compare(app, press=(), terminal_size=(80, 24), run_before=None) -> bool:
        actual = take_svg_screenshot(app=app, press=press, terminal_size=terminal_size, run_before=run_before)
        result = snapshot == actual
        index = snapshot.num_executions - 1
        executed = snapshot.executions.get(index)
        exists = bool(executed and executed.final_data is not None)
        console = Console(legacy_windows=False, force_terminal=True)
        pseudo = plugin.PseudoApp(plugin.PseudoConsole(console.legacy_windows, console.size))
        path, line, name = request.node.reportinfo()
        data = (result, str(snapshot), actual, pseudo, path, line, name,
                inspect.getdoc(request.node.function) or "", "", exists)
        plugin.node_to_report_path(request.node).write_bytes(pickle.dumps(data))  # the plugin's report reads it
        return result

    return compare
