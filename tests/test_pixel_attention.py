"""Which words drew a pixel (core.pixel_attention) and ``attention --at X,Y`` through the CLI on tiny."""

from __future__ import annotations

import numpy as np
import pytest

from sd_explorer.core.cli import main
from sd_explorer.core.errors import UserError
from sd_explorer.core.inputs import parse_point
from sd_explorer.core.model_folder import resolve_tokenizer, size_before_loading
from sd_explorer.core.pixel_attention import cell_centre, latent_cell, percent, rank_at, rank_pixels
from sd_explorer.core.tokens import breakdown

PROMPT = "a photo of a sneaker"


@pytest.fixture(scope="module")
def tokens():
    return breakdown(resolve_tokenizer("tiny"), PROMPT).tokens  # <start> a photo of a sneaker <end>


def _maps(h: int = 8, w: int = 16) -> np.ndarray:
    """77 positions over an ``h x w`` grid: even, but 'sneaker' (5) hot in the right half, 'photo' (2) in
    the left half, so the ranking depends on the cell."""
    maps = np.full((77, h, w), 1.0, np.float32)
    maps[5, :, w // 2:] = 20.0
    maps[2, :, :w // 2] = 10.0
    return maps


def test_a_pixel_maps_to_its_latent_cell_when_width_and_height_differ():
    size, grid = (128, 64), (16, 8)  # 8 pixels a cell both ways
    assert latent_cell(0, 0, size, grid) == (0, 0)
    assert latent_cell(7, 7, size, grid) == (0, 0) and latent_cell(8, 7, size, grid) == (1, 0)
    assert latent_cell(127, 63, size, grid) == (15, 7)
    assert latent_cell(64, 32, size, grid) == (8, 4)
    assert cell_centre((0, 0), size, grid) == (4, 4) and cell_centre((15, 7), size, grid) == (124, 60)
    for cell in [(0, 0), (5, 3), (15, 7)]:  # the cursor's pixel is inside its own cell
        assert latent_cell(*cell_centre(cell, size, grid), size, grid) == cell
    with pytest.raises(UserError, match=r"outside the 128x64 image: give X from 0 to 127 and Y from 0 to 63"):
        latent_cell(128, 0, size, grid)
    with pytest.raises(UserError, match="outside the 128x64 image"):
        latent_cell(0, 64, size, grid)


def test_tokens_ranked_by_their_heat_at_the_pixel(tokens):
    maps = _maps()
    right = rank_at(maps, tokens, 100, 10, (128, 64))
    assert right.cell == (12, 1) and right.grid == (16, 8) and right.image_size == (128, 64)
    assert right.total == pytest.approx(maps[:, 1, 12].sum())
    top = right.tokens[0]
    assert (top.text, top.position, top.kind) == ("<pad ×70>", 7, "end")  # 70 padding positions of 1.0
    assert right.tokens[1].text == "sneaker" and right.tokens[1].heat == pytest.approx(20.0)
    assert right.tokens[1].share == pytest.approx(20.0 / right.total)
    heats = [t.heat for t in right.tokens]
    assert heats == sorted(heats, reverse=True)
    assert sum(t.share for t in right.tokens) == pytest.approx(1.0)  # every position counted once
    kinds = {t.text: t.kind for t in right.tokens}
    assert kinds["<start>"] == "start" and kinds["<end>"] == "end" and kinds["photo"] == "word"
    assert [t.position for t in right.tokens if t.text == "a"] == [1, 4]  # a word twice: each piece listed
    left = rank_at(maps, tokens, 3, 60, (128, 64))
    assert left.cell == (0, 7) and left.tokens[1].text == "photo"  # another cell, another word on top
    assert not any(t.special for t in left.tokens[1:2]) and left.tokens[-1].heat == pytest.approx(1.0)


def test_words_of_several_pieces_are_summed():
    toks = breakdown(resolve_tokenizer("tiny"), "a photo of a sneakerz").tokens
    pieces = [t.piece for t in toks if not t.special]
    assert pieces[-2:] == ["sneaker", "z</w>"]  # one word, two BPE pieces
    maps = np.ones((77, 8, 8), np.float32)
    maps[5], maps[6] = 3.0, 4.0
    ranking = rank_at(maps, toks, 0, 0, (64, 64))
    assert [t.text for t in ranking.tokens if not t.special][:2] == ["z", "sneaker"]
    (word,) = ranking.words
    assert (word.text, word.positions, word.heat, word.kind) == ("sneakerz", (5, 6), pytest.approx(7.0), "word")
    assert any("word 'sneakerz' (pieces at 5,6)" in line for line in ranking.lines())


def test_ranking_lines_and_percentages(tokens):
    lines = rank_at(_maps(), tokens, 100, 10, (128, 64)).lines()
    assert lines[0] == "at (100, 10) of the 128x64 image (latent cell 12,1 of 16x8):"
    assert lines[1].split()[:2] == ["1", "sneaker"] and lines[1].endswith("% of the words)")  # words first
    assert [line.split()[0] for line in lines[1:6]] == ["1", "2", "3", "4", "5"]  # the 5 pieces, ranked
    assert lines[6].split()[0] == "<pad" and lines[6].endswith("(73% of all)")  # 70 of 96: start/end, part of all
    ranking = rank_at(_maps(), tokens, 100, 10, (128, 64))
    words = [t for t in ranking.tokens if not t.special]
    assert words[0].of_words == pytest.approx(words[0].heat / sum(t.heat for t in words))
    assert sum(t.of_words for t in words) == pytest.approx(1.0)
    assert all(t.of_words == 0.0 for t in ranking.tokens if t.special)
    assert len(lines) == 1 + 8  # <start>, 5 pieces, <end>, padding
    assert percent(0.412) == "41%" and percent(0.016) == "1.6%"


def test_rank_pixels_checks_every_point_first(tokens):
    with pytest.raises(UserError, match=r"pixel \(64, 0\) is outside the 64x64 image"):
        rank_pixels(np.ones((77, 8, 8)), tokens, [(1, 1), (64, 0)], (64, 64))


def test_parse_point():
    assert parse_point("40,24") == (40, 24) and parse_point(" 0, 7 ") == (0, 7)
    for bad in ["5", "a,b", "1,2,3", "", "1.5,2"]:
        with pytest.raises(UserError, match=r"is not X,Y: give a pixel of the image as two whole numbers, e.g. --at 32,32"):
            parse_point(bad)
    with pytest.raises(UserError, match="outside the image: X and Y count from 0"):
        parse_point("-1,3")


def test_the_size_is_known_before_loading():
    assert size_before_loading("tiny") == (64, 64)
    assert size_before_loading("someone/some-model") is None  # a Hub id: known once it loads


# ---------------------------------------------------------------- through the CLI, on tiny
def test_attention_at_prints_the_ranking_per_pixel(tmp_path, capsys):
    code = main(["attention", PROMPT, "--tokens", "sneaker", "--steps", "2", "--size", "128x64",
                 "--at", "40,24", "--at", "127,0", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    pngs = [line for line in out if line.endswith(".png")]
    assert len(pngs) == 3 and out[:3] == pngs  # what the command printed before comes first
    blocks = [i for i, line in enumerate(out) if line.startswith("at (")]
    assert [out[i] for i in blocks] == ["at (40, 24) of the 128x64 image (latent cell 5,3 of 16x8):",
                                        "at (127, 0) of the 128x64 image (latent cell 15,0 of 16x8):"]
    first = out[blocks[0] + 1:blocks[1]]
    assert len(first) == 8  # a, photo, of, a, sneaker, then <start>, <end>, the padding
    words, specials = first[:5], first[5:]
    assert {line.split()[1] for line in words} == {"a", "photo", "of", "sneaker"}
    assert {line.split()[0] for line in specials} == {"<start>", "<end>", "<pad"}
    ranks = [int(line.split()[0]) for line in words]
    heats = [float(line.split("(")[0].split()[-1]) for line in words]
    assert ranks == list(range(1, 6)) and heats == sorted(heats, reverse=True)
    shares = [float(line.split("(")[-1].split("%")[0]) for line in words]  # parts of the words' heat
    assert 99 <= sum(shares) <= 101


def test_attention_without_at_prints_no_ranking(tmp_path, capsys):
    assert main(["attention", PROMPT, "--tokens", "sneaker", "--steps", "1", "--out", str(tmp_path)]) == 0
    assert not any(line.startswith("at (") for line in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("at, message", [
    (["5"], "--at '5' is not X,Y"),
    (["a,b"], "--at 'a,b' is not X,Y"),
    (["1,1", "64,3"], "pixel (64, 3) is outside the 64x64 image: give X from 0 to 63 and Y from 0 to 63."),
    (["=-1,3"], "--at '-1,3' is outside the image"),
])
def test_bad_at_is_one_line_before_the_model_loads(tmp_path, capsys, at, message):
    flags = [f"--at{a}" if a.startswith("=") else f"--at={a}" for a in at]
    assert main(["attention", PROMPT, "--tokens", "sneaker", "--steps", "1", *flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sd-explorer: error: ") and message in err[0]
    assert not list(tmp_path.glob("*.png"))  # "loading tiny …" never printed: refused before the model


def test_outside_a_size_given_on_the_command_line(tmp_path, capsys):
    assert main(["attention", PROMPT, "--tokens", "sneaker", "--size", "128x64", "--at", "100,64",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sd-explorer: error: pixel (100, 64) is outside the 128x64 image: give X from 0 to 127 and "
                   "Y from 0 to 63."]
