"""Fashion training over two CPU processes (``accelerate launch``, gloo) equals the one-process run.

Three real CLI runs on 131 images, batch 32 (5 steps per epoch; the last global batch of 3 images is
split 2 + 1, so the per-rank loss weighting is exercised too):

1. two processes, 1 epoch: ``accelerate launch --multi_gpu --num_processes 2 -m sd_explorer.core fashion train``.
   ``accelerate launch --cpu --num_processes 2`` starts only ONE process (the simple launcher; see
   huggingface/accelerate#2741); ``--multi_gpu`` goes through torchrun, and on a machine without
   GPUs each rank's ``Accelerator(cpu=True)`` joins a MULTI_CPU gloo group. ``--device cpu`` keeps
   it on the CPU on a GPU machine too;
2. one process, 2 epochs, same seed and global batch;
3. one process resuming run 1's checkpoint to 2 epochs.

Tolerances: every rank draws the same global batch (images, flips, noise, timesteps) and DDP averages
the per-rank gradients, so the only difference from one process is fp32 summation order (two
half-batch gradients all-reduced vs one full-batch sum): measured at most ~1.2e-7 in the step losses
and ~6e-8 in the weights after 16 steps. We allow 1e-4 (losses) and 5e-5 (weights): far above that
rounding, far below a real divergence (ranks drawing their own noise, or the wrong images, moves the
step loss by ~1e-2).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

TRAIN = ["-m", "sd_explorer.core", "fashion", "train", "--tiny", "--limit", "131", "--batch-size", "32",
         "--device", "cpu", "--seed", "3"]
LOSS_TOL = 1e-4
WEIGHT_TOL = 5e-5


def _env(**extra: str) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    env.pop("SD_EXPLORER_FASHION_RANK_DIGEST", None)
    env.update(extra)
    return env


def _run(cmd: list[str], env: dict) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path)).items() if k.startswith("model.")}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_split_that_starves_a_rank_is_refused():
    from sd_explorer.core.errors import UserError
    from sd_explorer.core.fashion.trainer import check_split

    check_split(131, 32, 2)  # last batch 3 -> 2 + 1
    check_split(128, 32, 2)
    check_split(5, 1, 1)  # one process: anything goes
    for n, batch, world in ((129, 32, 2), (64, 1, 2), (10, 4, 3)):
        with pytest.raises(UserError, match="at least"):
            check_split(n, batch, world)


@pytest.fixture(scope="module")
def runs(fashion_dir, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("multiprocess")
    data = ["--data", str(fashion_dir)]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    digest = base / "digest"
    out = _run(launch + TRAIN + data + ["--epochs", "1", "--out", str(base / "mp")],
               _env(SD_EXPLORER_FASHION_RANK_DIGEST=str(digest)))
    _run([sys.executable] + TRAIN + data + ["--epochs", "2", "--out", str(base / "sp")], _env())
    _run([sys.executable, "-m", "sd_explorer.core", "fashion", "train", "--resume", str(base / "mp" / "ckpt-000005.safetensors"),
          "--epochs", "2", "--device", "cpu", "--out", str(base / "resumed")] + data + ["--limit", "131"], _env())
    (base / "mp-stdout.txt").write_text(out)
    return {"base": base, "mp": base / "mp", "sp": base / "sp", "resumed": base / "resumed", "digest": digest}


@pytest.mark.slow
def test_two_ranks_end_with_identical_parameters(runs):
    digests = sorted(runs["digest"].glob("params-rank*.sha256"))
    assert [p.name for p in digests] == ["params-rank0.sha256", "params-rank1.sha256"]
    values = {p.read_text().strip() for p in digests}
    assert len(values) == 1 and len(values.pop()) == 64


@pytest.mark.slow
def test_loss_curve_matches_single_process_at_same_global_batch(runs):
    from sd_explorer.core.fashion.checkpoint import load_checkpoint

    mp = load_checkpoint(runs["mp"] / "ckpt-000005.safetensors")
    sp1 = load_checkpoint(runs["sp"] / "ckpt-000005.safetensors")
    assert len(mp["losses"]) == 5 and mp["step"] == 5 and mp["num_images"] == 131
    assert mp["losses"] == pytest.approx(sp1["losses"], abs=LOSS_TOL, rel=0)
    assert mp["epoch_losses"] == pytest.approx(sp1["epoch_losses"], abs=LOSS_TOL, rel=0)
    assert len(set(round(v, 3) for v in mp["losses"])) > 1  # a real curve, not a constant
    assert _max_diff(_weights(runs["mp"] / "ckpt-000005.safetensors"),
                     _weights(runs["sp"] / "ckpt-000005.safetensors")) < WEIGHT_TOL


@pytest.mark.slow
def test_checkpoint_written_once_by_the_main_process(runs):
    assert sorted(p.name for p in runs["mp"].iterdir()) == ["ckpt-000005.safetensors"]  # no -1 copy, no temp
    stdout = (runs["base"] / "mp-stdout.txt").read_text()
    finals = [line for line in stdout.splitlines() if line.startswith("final loss")]
    assert len(finals) == 2  # both ranks finished ...
    assert sum(line.endswith("checkpoint None") for line in finals) == 1  # ... only one wrote


@pytest.mark.slow
def test_multiprocess_checkpoint_resumes_in_one_process(runs):
    from sd_explorer.core.fashion.checkpoint import load_checkpoint

    resumed = load_checkpoint(runs["resumed"] / "ckpt-000010.safetensors")
    straight = load_checkpoint(runs["sp"] / "ckpt-000010.safetensors")
    assert resumed["step"] == straight["step"] == 10
    assert resumed["losses"] == pytest.approx(straight["losses"], abs=LOSS_TOL, rel=0)
    assert _max_diff(_weights(runs["resumed"] / "ckpt-000010.safetensors"),
                     _weights(runs["sp"] / "ckpt-000010.safetensors")) < WEIGHT_TOL
