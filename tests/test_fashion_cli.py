"""``fashion train`` / ``fashion sample`` through argparse, on the CPU with a tiny model."""

from __future__ import annotations

import argparse

import pytest
from PIL import Image

from sd_explorer.core.errors import UserError
from sd_explorer.core.fashion.cli import add_parser


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default=None)
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_parser_registration():
    args = parse(["fashion", "sample", "--class", "0,7", "-n", "3", "--steps", "20", "--out", "o"])
    assert args.command == "fashion" and args.fashion_command == "sample"
    assert args.classes == "0,7" and args.n == 3 and args.steps == 20 and args.out == "o"
    args = parse(["--out", "top", "--device", "cpu", "fashion", "train", "--epochs", "3", "--ema", "0.999"])
    assert args.out == "top" and args.device == "cpu" and args.epochs == 3  # top-level options survive
    from sd_explorer.core.fashion.cli import build_config

    assert build_config(args).ema_decay == 0.999
    assert callable(args.func)


def test_cpu_default_is_the_cpu_recipe_and_flags_override_it(capsys):
    from sd_explorer.core.fashion.cli import build_config
    from sd_explorer.core.fashion.recipes import CPU, model_config

    cfg = build_config(parse(["--out", "o", "--device", "cpu", "fashion", "train"]))
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.ema_decay) == (CPU.epochs, CPU.batch_size, CPU.lr, CPU.ema_decay)
    assert cfg.model == model_config("small")
    assert "CPU recipe is the default" in capsys.readouterr().out
    cfg = build_config(parse(["--out", "o", "--device", "cpu", "fashion", "train", "--batch-size", "32", "--epochs", "2"]))
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (2, 32, CPU.lr)
    cfg = build_config(parse(["--out", "o", "--device", "cpu", "fashion", "train", "--chapter"]))
    assert (cfg.batch_size, cfg.lr, cfg.ema_decay) == (256, 3e-4, 0.0) and cfg.model == model_config("chapter")
    cfg = build_config(parse(["--out", "o", "--device", "cpu", "fashion", "train", "--tiny"]))
    assert cfg.model == model_config("tiny") and cfg.batch_size == 256
    assert (cfg.lr_warmup_steps, cfg.lr_schedule, cfg.ema_warmup) == (0, "constant", False)
    cfg = build_config(parse(["--out", "o", "--device", "cpu", "fashion", "train", "--lr-warmup", "100",
                              "--lr-schedule", "cosine", "--ema", "0.999", "--ema-warmup"]))
    assert (cfg.lr_warmup_steps, cfg.lr_schedule, cfg.ema_decay, cfg.ema_warmup) == (100, "cosine", 0.999, True)


def test_train_then_sample_and_resume(fashion_dir, tmp_path, capsys):
    ck = tmp_path / "ck"
    args = parse(["--device", "cpu", "fashion", "train", "--data", str(fashion_dir), "--tiny", "--limit", "32",
                  "--epochs", "1", "--batch-size", "16", "--out", str(ck)])
    assert args.func(args) == 0
    first = ck / "ckpt-000002.safetensors"
    assert first.is_file()
    args = parse(["--device", "cpu", "fashion", "train", "--data", str(fashion_dir), "--limit", "32",
                  "--resume", str(first), "--epochs", "2", "--out", str(ck)])
    assert args.func(args) == 0
    assert (ck / "ckpt-000004.safetensors").is_file()
    out = tmp_path / "png"
    args = parse(["--device", "cpu", "fashion", "sample", "--class", "7", "-n", "2", "--steps", "3",
                  "--checkpoint", str(ck / "ckpt-000004.safetensors"), "--out", str(out)])
    assert args.func(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["fashion-class7-0001.png", "fashion-class7-0002.png", "fashion-grid-0001.png"]
    with Image.open(out / "fashion-class7-0001.png") as im:
        assert im.size == (32, 32) and im.mode == "L"
        assert im.info["parameters"].startswith("Fashion-MNIST class 7 (Sneaker)\nSteps: 3, Sampler: DDIM, Seed: 0")
    with Image.open(out / "fashion-grid-0001.png") as im:
        assert "Grid: 1 classes x 2 samples" in im.info["parameters"]
    assert all((p.stat().st_mode & 0o777) == 0o666 & ~_umask() for p in out.iterdir())  # not mkstemp's 0600
    assert args.func(args) == 0  # a second run never overwrites
    assert {"fashion-class7-0003.png", "fashion-grid-0002.png"} <= {p.name for p in out.iterdir()}
    assert "wrote 2 images" in capsys.readouterr().out
    assert all((p.stat().st_mode & 0o777) == 0o666 & ~_umask() for p in ck.iterdir())  # checkpoints too
    # the run's folder samples its newest checkpoint (issue 27: it said the folder "does not exist")
    (ck / "ckpt-000004-1.safetensors").write_bytes((ck / "ckpt-000004.safetensors").read_bytes())
    args = parse(["--device", "cpu", "fashion", "sample", "--class", "7", "-n", "1", "--steps", "2",
                  "--checkpoint", str(ck), "--out", str(tmp_path / "from-folder")])
    assert args.func(args) == 0
    assert f"the newest checkpoint there, {ck / 'ckpt-000004-1.safetensors'}" in capsys.readouterr().out
    from sd_explorer.core.fashion.checkpoint import newest_checkpoint

    assert newest_checkpoint(ck).name == "ckpt-000004-1.safetensors"
    with pytest.raises(UserError, match="has no ckpt-"):
        newest_checkpoint(tmp_path / "png")


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_repeated_classes_are_one_row_each():
    """--class 7 repeated 400 times with -n 256 was 102,400 images and an out-of-memory crash (issue 26)."""
    from sd_explorer.core.fashion.cli import _parse_classes

    assert _parse_classes(",".join(["7"] * 400)) == [7]
    assert _parse_classes("7, 0,7,9,0") == [7, 0, 9]


def test_bad_cli_input(tmp_path):
    for argv, msg in (
        (["fashion", "sample", "--class", "12", "--out", str(tmp_path)], "0-9"),
        (["fashion", "sample", "--class", "x", "--out", str(tmp_path)], "0-9"),
        (["fashion", "sample", "--class", "1", "--checkpoint", str(tmp_path / "no.safetensors"),
          "--out", str(tmp_path)], "does not exist"),
        (["fashion", "train", "--data", str(tmp_path / "none"), "--tiny", "--out", str(tmp_path)], "does not exist"),
        (["fashion", "train", "--tiny"], "--out"),
        (["fashion", "train", "--epochs", "0", "--out", str(tmp_path)], "epochs"),
        (["fashion", "train", "--ema", "1.5", "--out", str(tmp_path)], "ema_decay"),
        (["fashion", "train", "--lr", "inf", "--out", str(tmp_path)], "learning rate"),
        (["fashion", "train", "--lr", "nan", "--out", str(tmp_path)], "learning rate"),
        (["fashion", "train", "--limit", "-5", "--out", str(tmp_path)], "--limit"),
        (["fashion", "train", "--seed", str(2**64), "--out", str(tmp_path)], "seed"),
        (["fashion", "sample", "-n", "100000000", "--out", str(tmp_path)], "-n"),
        (["fashion", "sample", "--seed", str(2**64), "--out", str(tmp_path)], "seed"),
        (["fashion", "sample", "--steps", "0", "--out", str(tmp_path)], "--steps"),
        (["fashion", "sample", "--grey", "2", "--grey-scale", "5", "--out", str(tmp_path)], "--grey"),
        (["fashion", "sample", "--grey-scale", "30", "--out", str(tmp_path)], "--grey-scale needs --grey"),
    ):
        args = parse(["--device", "cpu", *argv])
        with pytest.raises(UserError, match=msg):
            args.func(args)


def test_cpu_defaults_small_unet_scores_epochs_keeps_newest(fashion_dir, tmp_path, capsys):
    """On a CPU: the CPU recipe's small UNet (saying why), class fidelity after each epoch, --keep N checkpoints,
    DDIM 50."""
    from sd_explorer.core.fashion.cli import build_config
    from sd_explorer.core.fashion.model import ModelConfig
    from sd_explorer.core.fashion.recipes import model_config

    ck = tmp_path / "ck"
    args = parse(["--device", "cpu", "fashion", "train", "--data", str(fashion_dir), "--limit", "32",
                  "--epochs", "3", "--batch-size", "16", "--keep", "1", "--out", str(ck)])
    assert build_config(args).model == model_config("small")
    assert parse(["--device", "cpu", "fashion", "train", "--chapter", "--out", "o"]).chapter
    assert build_config(parse(["--device", "cpu", "fashion", "train", "--chapter", "--out", "o"])).model == ModelConfig()
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "on a CPU the CPU recipe is the default" in out
    assert out.count("class fidelity ") == 3  # measured by the classifier after every epoch
    assert sorted(p.name for p in ck.glob("*.safetensors")) == ["ckpt-000006.safetensors"]
    args = parse(["--device", "cpu", "fashion", "sample", "--class", "1", "-n", "1",
                  "--checkpoint", str(ck / "ckpt-000006.safetensors"), "--out", str(tmp_path / "png")])
    assert args.steps is None and args.func(args) == 0 and args.steps == 50
    assert "default is 50 DDIM steps" in capsys.readouterr().out
