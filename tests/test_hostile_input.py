"""Issue 13: malformed files, configs and numbers get one line naming the fix, exit 2, write nothing.

Each class of bad input has a named example (the attack's own) and a property-based test that mutates
the real thing: the shipped model folder's JSON files, a Fashion checkpoint's metadata, IDX headers and
training configs. The property: exit 0 (the mutation was harmless) or exit 2 with exactly one error line
and nothing written; never exit 1 (the last-resort guard) and never a traceback.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from sd_explorer.core.cli import main
from sd_explorer.core.model_folder import TINY

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                        st.text(max_size=12), st.lists(st.integers(-3, 300), max_size=4),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    """``sd-explorer ARGV`` in this process: the exit code and stderr's lines (progress notes dropped)."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("loading ")]
    return code, lines


def assert_refused(code: int, lines: list[str], out: Path, match: str = "") -> None:
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("sd-explorer: error: "), lines
    assert "Traceback" not in lines[0] and match in lines[0], lines
    assert not out.exists() or not any(out.iterdir()), "a refused command wrote files"


def assert_clean(code: int, lines: list[str], out: Path) -> None:
    """Either it worked (the mutation was harmless) or it was refused cleanly; never an internal error."""
    assert code in (0, 2), lines
    assert not any("Traceback" in ln or "internal error" in ln for ln in lines), lines
    if code == 2:
        assert_refused(code, lines, out)


# -- model folders -------------------------------------------------------------------------------

@pytest.fixture
def tiny_copy(tmp_path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("*.png", "MODEL_CARD.md"))
    return folder


def generate(folder: Path, out: Path, capsys, *extra: str):
    return run_cli(["generate", "a boot", "--model", str(folder), "--steps", "1", "--device", "cpu",
                    "--out", str(out), *extra], capsys)


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage, match", [
    (lambda f: (f / "unet" / "config.json").write_text('{"_class_name": "UNet2DConditionModel",'), "not valid JSON"),
    (lambda f: (f / "model_index.json").write_bytes(b'{"_class_name": "\xff\xfe"}'), "not UTF-8"),
    (lambda f: edit_json(f / "model_index.json", lambda d: d.update(scheduler=["diffusers", "NoSuchScheduler"])),
     "scheduler must name a diffusers scheduler class"),
    (lambda f: edit_json(f / "model_index.json", lambda d: d.update(scheduler=None)), "scheduler must name"),
    (lambda f: (f / "scheduler" / "scheduler_config.json").write_text("null"), "must hold a JSON object"),
    (lambda f: edit_json(f / "unet" / "config.json", lambda d: d.update(block_out_channels=None)), "block_out_channels = null does not fit"),
    (lambda f: (f / "preview_factors.json").write_text("{bad"), "preview_factors.json is not valid JSON"),
    (lambda f: edit_json(f / "preview_factors.json", lambda d: d.update(factors=[[1, 2]])), "factors must be 4 rows"),
])
def test_malformed_model_folder_is_refused(tiny_copy, tmp_path, capsys, damage, match):
    damage(tiny_copy)
    code, lines = generate(tiny_copy, tmp_path / "out", capsys)
    assert_refused(code, lines, tmp_path / "out", match)


MODEL_JSON = ["model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "vae/config.json",
              "text_encoder/config.json", "preview_factors.json"]


@settings(FAST, max_examples=10)  # each example loads the model: ~5 s
@given(data=st.data())
def test_mutated_model_folder_never_crashes(tmp_path_factory, capsys, data):
    folder = tmp_path_factory.mktemp("m") / "tiny"
    shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("*.png", "MODEL_CARD.md"))
    path = folder / data.draw(st.sampled_from(MODEL_JSON), label="file")
    raw = json.loads(path.read_text())
    how = data.draw(st.sampled_from(["value", "drop", "bytes"]), label="how")
    if how == "bytes":  # truncated or not UTF-8
        text = path.read_bytes()
        cut = data.draw(st.integers(0, len(text) - 1), label="cut")
        path.write_bytes(text[:cut] + data.draw(st.sampled_from([b"", b"\xff", b"\x00"]), label="tail"))
    else:
        key = data.draw(st.sampled_from(sorted(raw)), label="key")
        if how == "drop":
            del raw[key]
        else:
            raw[key] = data.draw(JSON_VALUES, label="value")
        path.write_text(json.dumps(raw))
    out = folder.parent / "out"
    assert_clean(*generate(folder, out, capsys), out)


# -- Fashion checkpoints -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fashion_weights(tmp_path_factory) -> Path:
    import torch

    from sd_explorer.core.fashion.model import ModelConfig, build_unet, save_weights

    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    return save_weights(build_unet(cfg), cfg, tmp_path_factory.mktemp("fw") / "tiny.safetensors")


def with_config(src: Path, dst: Path, text: str) -> Path:
    from safetensors.torch import load_file, save_file

    from sd_explorer.core.fashion.model import CONFIG_KEY

    save_file(load_file(str(src)), str(dst), metadata={CONFIG_KEY: text})
    return dst


def sample(ckpt: Path, out: Path, capsys, *extra: str):
    return run_cli(["fashion", "sample", "--checkpoint", str(ckpt), "-n", "1", "--steps", "2", "--device", "cpu",
                    "--out", str(out), *extra], capsys)


@pytest.mark.parametrize("config, match", [
    ("{broken", "not valid JSON"),
    ('{"block_out_channels": [8, 16], "no_such_key": 1}', "unknown key(s) no_such_key"),
    ('{"block_out_channels": [7, 14], "norm_num_groups": 4}', "divisible by norm_num_groups"),
    ('{"block_out_channels": [2048, 2048, 2048, 2048, 2048, 2048], "layers_per_block": 8, "down_block_types": '
     '["DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D"], "up_block_types": '
     '["UpBlock2D","UpBlock2D","UpBlock2D","UpBlock2D","UpBlock2D","UpBlock2D"]}', "parameters"),
    ('{"layers_per_block": "2"}', "layers_per_block must be a whole number"),
    ("null", "must be a JSON object"),
])
def test_bad_checkpoint_metadata_is_refused(fashion_weights, tmp_path, capsys, config, match):
    ckpt = with_config(fashion_weights, tmp_path / "bad.safetensors", config)
    code, lines = sample(ckpt, tmp_path / "out", capsys)
    assert_refused(code, lines, tmp_path / "out", match)


@FAST
@given(key=st.sampled_from(["block_out_channels", "layers_per_block", "down_block_types", "up_block_types",
                            "norm_num_groups", "sample_size", "num_classes", "num_train_timesteps", "beta_start",
                            "beta_end", "extra", "unknown"]), value=JSON_VALUES)
def test_mutated_checkpoint_metadata_never_crashes(fashion_weights, tmp_path_factory, capsys, key, value):
    from sd_explorer.core.fashion.model import ModelConfig

    raw = json.loads(ModelConfig.tiny().to_json())
    raw[key] = value
    folder = tmp_path_factory.mktemp("ck")
    ckpt = with_config(fashion_weights, folder / "m.safetensors", json.dumps(raw))
    assert_clean(*sample(ckpt, folder / "out", capsys), folder / "out")


def test_bad_training_state_is_refused(tmp_path, capsys, fashion_weights):
    from safetensors.torch import load_file, save_file

    from sd_explorer.core.fashion.checkpoint import STATE_KEY
    from sd_explorer.core.fashion.model import CONFIG_KEY, ModelConfig

    ckpt = tmp_path / "ckpt.safetensors"
    tensors = {f"model.{k}": v.float() for k, v in load_file(str(fashion_weights)).items()}
    save_file(tensors, str(ckpt), metadata={CONFIG_KEY: ModelConfig.tiny().to_json(),
                                            STATE_KEY: json.dumps({"step": "ten", "epoch": 0, "step_in_epoch": 0})})
    code, lines = run_cli(["fashion", "train", "--resume", str(ckpt), "--out", str(tmp_path / "out")], capsys)
    assert_refused(code, lines, tmp_path / "out", "fashion_state.step")


# -- IDX and gzip --------------------------------------------------------------------------------

def write_idx(folder: Path, n: int = 64, header: bytes | None = None, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = header or struct.pack(">iiii", 2051, n, 28, 28)
    images += rng.integers(0, 256, n * 28 * 28, dtype=np.uint8).tobytes()
    labels = struct.pack(">ii", 2049, n) + (np.arange(n) % 10).astype(np.uint8).tobytes()
    opener = gzip.compress if gz else (lambda b: b)
    suffix = ".gz" if gz else ""
    (folder / f"train-images-idx3-ubyte{suffix}").write_bytes(opener(images))
    (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(opener(labels))
    return folder


def train(data: Path, out: Path, capsys, *extra: str):
    return run_cli(["fashion", "train", "--data", str(data), "--tiny", "--epochs", "1", "--batch-size", "64",
                    "--device", "cpu", "--out", str(out), *extra], capsys)


def test_idx_header_that_overflows_is_refused(tmp_path, capsys):
    data = write_idx(tmp_path / "d", header=struct.pack(">iiii", 2051, 2097152, 2097152, 4194304))
    assert_refused(*train(data, tmp_path / "out", capsys), tmp_path / "out", "header")


def test_corrupt_gzip_is_refused(tmp_path, capsys):
    data = write_idx(tmp_path / "d", gz=True)
    blob = bytearray((data / "train-images-idx3-ubyte.gz").read_bytes())
    blob[len(blob) // 2: len(blob) // 2 + 64] = b"\x00" * 64
    (data / "train-images-idx3-ubyte.gz").write_bytes(bytes(blob))
    assert_refused(*train(data, tmp_path / "out", capsys), tmp_path / "out", "train-images-idx3-ubyte.gz")


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path, capsys):
    """A header that declares far more than Fashion-MNIST: refused from the header, in bounded memory."""
    import resource

    data = tmp_path / "d"
    data.mkdir()
    body = gzip.compress(struct.pack(">iiii", 2051, 4_000_000, 28, 28) + bytes(256 * 2**20))  # 256 MiB of zeros
    (data / "train-images-idx3-ubyte.gz").write_bytes(body)
    (data / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">ii", 2049, 4_000_000)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert_refused(*train(data, tmp_path / "out", capsys), tmp_path / "out", "declares")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64, f"peak memory grew by {grown_mib:.0f} MiB"


@FAST
@given(fields=st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1),
                        st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1)))
def test_mutated_idx_headers_never_crash(tmp_path_factory, capsys, fields):
    assume(fields != (2051, 64, 28, 28))
    folder = tmp_path_factory.mktemp("idx")
    data = write_idx(folder / "d", header=struct.pack(">iiii", *fields))
    assert_clean(*train(data, folder / "out", capsys), folder / "out")


# -- training configs ----------------------------------------------------------------------------

@pytest.mark.parametrize("config, match", [
    ('{"epochs": "5"}', "epochs must be a whole number"),
    ('{"epochs": 2.5}', "epochs must be a whole number"),
    ('{"batch_size": null}', "batch_size must be a whole number"),
    ('{"lr": "fast"}', "lr must be a number"),
    ('{"model": 3}', "model must be a JSON object"),
    ("[1, 2]", "must be a JSON object"),
    ('{"epochs": 5, "turbo": true}', "unknown key(s) turbo"),
    ('{"lr": 1e400}', "lr must be a number"),
])
def test_bad_training_config_is_refused(tmp_path, capsys, config, match):
    path = tmp_path / "c.json"
    path.write_text(config)
    code, lines = run_cli(["fashion", "train", "--config", str(path), "--out", str(tmp_path / "out")], capsys)
    assert_refused(code, lines, tmp_path / "out", match)


TRAIN_KEYS = ["epochs", "batch_size", "lr", "eps", "seed", "model", "data", "checkpoint_every_epochs", "log_every",
              "log_seconds", "channels_last", "mixed_precision", "compile", "ema_decay", "cuda_graph", "nonsense"]


@FAST
@given(raw=st.dictionaries(st.sampled_from(TRAIN_KEYS), JSON_VALUES, max_size=4))
def test_mutated_training_configs_never_crash(tmp_path_factory, capsys, raw):
    folder = tmp_path_factory.mktemp("tc")
    path = folder / "c.json"
    path.write_text(json.dumps(raw))
    # a config that passes stops at the missing data folder: exit 2 either way, and fast
    code, lines = run_cli(["fashion", "train", "--config", str(path), "--data", str(folder / "none"),
                           "--device", "cpu", "--out", str(folder / "out")], capsys)
    assert_refused(code, lines, folder / "out")


# -- numbers and text typed on the command line --------------------------------------------------

@pytest.mark.parametrize("argv, match", [
    (["generate", "a boot", "--guidance", "1e30"], "guidance scale must be a finite number from 0 to 100"),
    (["generate", "a boot", "--steps", "1000", "--scheduler", "PNDM"], "use at most 999"),
    (["generate", "a boot", "--seed", str(2**64)], "seed must be a whole number from 0 to 2^64-1"),
    (["generate", "a boot", "-n", "100000000"], "image count"),
    (["generate", "a \udcff boot"], "not valid UTF-8"),
    (["tokens", "a \udcff boot"], "not valid UTF-8"),
    (["fashion", "train", "--lr", "inf"], "learning rate"),
    (["fashion", "train", "--limit", "-5"], "--limit"),
    (["fashion", "sample", "--seed", str(2**64)], "--seed"),
    (["fashion", "sample", "-n", "100000000"], "-n"),
])
def test_numbers_and_text_out_of_range_are_refused(tmp_path, capsys, argv, match):
    code, lines = run_cli([*argv, "--device", "cpu", "--out", str(tmp_path / "out")], capsys)
    assert_refused(code, lines, tmp_path / "out", match)


def test_unwritable_output_folder_is_refused_before_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, lines = run_cli(["fashion", "sample", "-n", "1", "--steps", "2", "--device", "cpu",
                           "--out", str(blocker / "sub")], capsys)
    assert code == 2 and len(lines) == 1 and "cannot write to" in lines[0], lines


def test_internal_errors_are_one_line_and_logged(tmp_path, capsys, monkeypatch):
    import sd_explorer.core.cli
    from sd_explorer import core

    def broken(args):
        raise KeyError("unet")

    monkeypatch.setenv("SD_EXPLORER_STATE", str(tmp_path / "state"))
    monkeypatch.setattr(core.cli, "cmd_tokens", broken)
    monkeypatch.setattr(sys, "argv", ["sd-explorer", "tokens", "x"])
    code, lines = run_cli(["tokens", "x"], capsys)
    log = tmp_path / "state" / "errors.log"
    assert code == 1 and lines == [f"sd-explorer: internal error: KeyError: 'unet' (please report; details in {log})"]
    assert "Traceback" in log.read_text() and "raise KeyError" in log.read_text()
