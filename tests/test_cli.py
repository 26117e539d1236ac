"""The headless commands, run as users run them (a subprocess for the exit codes that matter)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from sd_explorer.core.cli import main
from sd_explorer.core.inputs import parse_scales, parse_size
from sd_explorer.core.errors import UserError
from tests.conftest import ROOT


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "sd_explorer.core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_sweep_on_tiny_writes_cells_and_a_captioned_grid(tmp_path):
    out = run_cli("sweep", "a photo of a sneaker", "--steps", "3", "--scales", "1,2,4,12", "--out", str(tmp_path),
                  "--device", "cpu")
    assert out.returncode == 0, out.stderr
    paths = [line for line in out.stdout.splitlines() if line.endswith(".png")]
    assert len(paths) == 5
    grid = Image.open(paths[-1])
    assert grid.text["parameters"].startswith("a photo of a sneaker")
    assert "CFG scales: 1, 2, 4, 12" in grid.text["parameters"]
    assert "CFG scale: 12" in Image.open(paths[3]).text["parameters"]
    assert grid.size[0] == 4 * Image.open(paths[0]).size[0] * max(1, -(-128 // Image.open(paths[0]).size[0]))


def test_generate_count_and_metadata(tmp_path, sd1_folder):
    code = main(["generate", "a red fox", "--model", str(sd1_folder), "-n", "2", "--steps", "2", "--seed", "4",
                 "--guidance", "3", "--scheduler", "euler-ancestral", "--out", str(tmp_path), "--size", "64x96"])
    assert code == 0
    files = sorted(tmp_path.glob("*.png"))
    assert [f.name for f in files] == ["a-red-fox-0001.png", "a-red-fox-0002.png"]
    params = Image.open(files[0]).text["parameters"]
    assert "Sampler: Euler ancestral" in params and "Seed: 4," in params and "Size: 64x96" in params
    assert "Seed: 5," in Image.open(files[1]).text["parameters"]  # the seed that gives the second image alone


def test_latents_prints_sizes_and_psnr(tmp_path, sd1_folder):
    Image.new("RGB", (70, 50), "orange").save(tmp_path / "in.png")
    out = run_cli("latents", str(tmp_path / "in.png"), "--model", str(sd1_folder), "--out", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    assert "12,288 values -> 4x8x8 = 256 values (48x smaller)" in out.stdout
    assert "PSNR" in out.stdout and len(list((tmp_path / "o").glob("*.png"))) == 3


def test_tokens_table():
    out = run_cli("tokens", "A photograph of a puppy")
    assert out.returncode == 0, out.stderr
    assert " 8853  photograph</w>" in out.stdout and "5/75 tokens" in out.stdout


def test_tokens_table_reads_emoji_and_numbers_dropped_tokens_apart():
    out = run_cli("tokens", "a 👟 and a 🦩 " + "cat " * 72 + "zebra", "--long-prompt", "truncate")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    shoe = next(r for r in rows if "41183" in r)
    assert "👟" in shoe and "ðŁĳŁ</w>" in shoe  # the BPE piece and the text it spells
    assert sum("part 1/2 of 🦩" in r for r in rows) == 1 and sum("part 2/2 of 🦩" in r for r in rows) == 1
    dropped = [r for r in rows if "DROPPED" in r]
    n = len(dropped)  # 6 pieces, 72 cats and a zebra: 79 for a window of 75
    assert n == 4 and all(r.split()[0] == "–" for r in dropped)
    assert "DROPPED 4/4" in dropped[-1] and "zebra" in dropped[-1] and "79/75" in dropped[-1]
    positions = [r.split()[0] for r in rows[1:-1] if r.split()[0] != "–"]
    assert positions == [str(i) for i in range(77)]  # every window position once, 76 the end token


@pytest.mark.parametrize("args, message", [
    (["sweep", "x", "--scales", ""], "scale list is empty"),
    (["sweep", "x", "--scales", "1,nan"], "finite"),
    (["generate", "x", "--steps", "0"], "steps"),
    (["generate", "x", "--guidance", "inf"], "guidance"),
    (["generate", "x", "--size", "65x64"], "multiple of 8"),
    (["generate", "x", "--model", "/does/not/exist"], "no such folder"),
    (["latents", "/etc/hostname"], "not an image"),
    (["latents", "/etc/hostname", "--seed", "-1"], "--seed must be a whole number from 0 to 2^64-1"),
    (["latents", "/etc/hostname", "--seed", str(2**64)], "--seed must be a whole number from 0 to 2^64-1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    out = run_cli(*args, "--out", str(tmp_path / "out"))
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("sd-explorer: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_parsers():
    assert parse_size("512") == (512, 512) and parse_size("640x480") == (640, 480)
    assert parse_scales("1, 2,4 12") == [1, 2, 4, 12] == parse_scales("1; 2; 4; 12")
    assert parse_size("") == (None, None) and parse_size("640*480") == parse_size("640×480") == (640, 480)
    with pytest.raises(UserError):
        parse_size("big")
    with pytest.raises(UserError):
        parse_scales("one")


def test_no_subcommand_hands_over_to_the_tui_launcher():
    seen = {}
    from sd_explorer.tui.entry import add_flags  # the explorer's own flags live with the explorer

    assert main(["--model", "tiny", "--pane", "sweep"], tui_launcher=lambda a: seen.update(vars(a)) or 0,
                tui_flags=add_flags) == 0
    assert seen["model"] == "tiny" and seen["pane"] == "sweep" and seen["command"] is None
    seen.clear()
    assert main(["--refiner", "R", "--refiner-at", "0.7"], tui_launcher=lambda a: seen.update(vars(a)) or 0,
                tui_flags=add_flags) == 0
    assert seen["refiner"] == "R" and seen["refiner_at"] == 0.7
    with pytest.raises(SystemExit):  # without the explorer, the top level has no refiner (generate/sweep do)
        main(["--refiner", "R"], tui_launcher=lambda a: 0)


def test_sweep_axes_from_the_cli(tmp_path, sd1_folder):
    code = main(["sweep", "a man in a hat", "--model", str(sd1_folder), "--negatives", "|white hat", "--steps", "2",
                 "--out", str(tmp_path)])
    assert code == 0
    grid = sorted(tmp_path.glob("sweep-*.png"))[-1]
    assert "Grid: 7.5 · no negative | 7.5 · neg 'white hat'" in Image.open(grid).text["parameters"]
    Image.new("RGB", (64, 64), "gray").save(tmp_path / "start.png")
    code = main(["sweep", "a man", "--model", str(sd1_folder), "--init-image", str(tmp_path / "start.png"),
                 "--strengths", "0.5,1", "--steps", "4", "--out", str(tmp_path / "s")])
    assert code == 0
    cells = sorted((tmp_path / "s").glob("a-man-strength*.png"))
    assert ["Denoising strength: 0.5" in Image.open(c).text["parameters"] for c in cells] == [True, False]


@pytest.mark.parametrize("args, message", [
    (["--strengths", "0.5"], "starting image"),
    (["--color-scales", "1,2"], "target colour"),
    (["--original-sizes", "256x256"], "SDXL"),
    (["--crops", "1y2"], "AxB"),
])
def test_sweep_axis_errors(sd1_folder, capsys, args, message):
    """Refused before the model loads (issue 27: --original-sizes on tiny failed after 32 s of loading)."""
    assert main(["sweep", "x", "--model", str(sd1_folder), "--steps", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "loading " not in err, err


def test_two_axis_grid_from_the_cli(tmp_path, sd1_folder, capsys):
    code = main(["sweep", "a man in a hat", "--model", str(sd1_folder), "--x", "scale=1-9 [3]", "--y", "seed=1,2",
                 "--steps", "2", "--out", str(tmp_path)])
    assert code == 0
    grid = Image.open(sorted(tmp_path.glob("grid-*.png"))[-1])
    params = grid.text["parameters"]
    assert 'X Type: CFG scale, X Values: "1, 5, 9", Y Type: Seed, Y Values: "1, 2"' in params
    assert len(sorted(tmp_path.glob("a-man-in-a-hat-cell*.png"))) == 6
    assert "Seed: 2" in Image.open(sorted(tmp_path.glob("a-man-in-a-hat-cell6*.png"))[0]).text["parameters"]
    assert "3x2 grid (scale x seed)" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--x", "scale"], "AXIS=VALUES"),
    (["--y", "seed=1"], "--y needs an --x"),
    (["--x", "wobble=1"], "unknown grid axis"),
    (["--x", "seed=1-5 (+0)"], "step"),
])
def test_grid_errors(sd1_folder, capsys, args, message):
    assert main(["sweep", "x", "--model", str(sd1_folder), "--steps", "1", *args]) == 2
    assert message in capsys.readouterr().err


def test_tokens_prints_weights_and_chunks():
    out = run_cli("tokens", "a (red:1.3) [cat] BREAK dog")
    assert out.returncode == 0, out.stderr
    red = next(r.split() for r in out.stdout.splitlines() if "red</w>" in r)
    assert red[2:] == ["red</w>", "red", "1.3", "2/75"]
    assert "start of chunk 2" in out.stdout and "dog</w>" in out.stdout and "4/150" in out.stdout
    assert "4/150 tokens in 2 chunks" in out.stdout


def test_sdxl_grid_from_the_cli(tmp_path, sdxl_folder, capsys):
    code = main(["sweep", "a (collie:1.3) BREAK in a top hat", "--model", str(sdxl_folder), "--x",
                 "original_size=256x256,1024x1024", "--y", "scale=1,5", "--steps", "2", "--out", str(tmp_path)])
    assert code == 0
    params = Image.open(sorted(tmp_path.glob("grid-*.png"))[-1]).text["parameters"]
    assert 'X Type: Original size, X Values: "256x256, 1024x1024", Y Type: CFG scale, Y Values: "1, 5"' in params
    assert "2x2 grid (original_size x scale) in" in capsys.readouterr().err
