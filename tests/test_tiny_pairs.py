"""Two garments side by side: pair captions with grounded tokens, pair batches, the grounding loss, and
the training recipe's pair path end to end on CPU (mechanics, not quality)."""

from __future__ import annotations

import json

import pytest
import torch

from sd_explorer.core.tiny import batches, captions, grounding, train
from tests.test_tiny_train import data_dir  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def tok():
    from sd_explorer.core.clip_vocab import clip_tokenizer

    return clip_tokenizer()


def _marked(table, row, tok, mark):
    names = tok.convert_ids_to_tokens(table.ids[row].tolist())
    return [n.replace("</w>", "") for n, m in zip(names, table.marks[row].tolist()) if m == mark]


def test_pair_captions_mark_the_left_and_right_garments_and_keep_held_out_prompts_out(tok):
    table = grounding.pair_table(tok, per_pair=6, seed=0)  # checks its ids against the tokenizer's own
    assert table.rows.shape == (100, 6)
    held = {p for p, _, _ in captions.PAIR_PROMPTS}
    assert not held & set(table.texts)
    # every caption of key bag(8) -> sneaker(7) grounds bag-words as 1 and sneaker-words as 2
    bag, sneaker = {"bag", "handbag", "purse"}, {"sneaker", "running", "shoe", "trainer"}
    for row in table.rows[8 * 10 + 7].tolist():
        assert set(_marked(table, row, tok, 1)) <= bag and _marked(table, row, tok, 1)
        assert set(_marked(table, row, tok, 2)) <= sneaker and _marked(table, row, tok, 2)
    # "right ... left" templates name the right garment first: the marks follow the garment, not the order
    marker = grounding._Marker(tok)
    ids, marks, text = marker.encode("{b} on the right and {a} on the left", {"a": "a bag", "b": "a sneaker"})
    assert text == "a sneaker on the right and a bag on the left"
    names = tok.convert_ids_to_tokens(ids)
    assert [n for n, m in zip(names, marks) if m == 2] == ["sneaker</w>"]
    assert [n for n, m in zip(names, marks) if m == 1] == ["bag</w>"]


def test_held_out_pair_prompts_include_the_issues_examples():
    prompts = {p: (a, b) for p, a, b in captions.PAIR_PROMPTS}
    assert prompts["a photo of a bag on the left and a sneaker on the right"] == (8, 7)
    assert prompts["a sandal next to a dress"] == (5, 3)
    assert prompts["trousers on the right and a bag on the left"] == (8, 1)


def test_pair_batch_puts_two_latents_side_by_side_with_their_masks(tok):
    n = 6
    mean = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 4, 8, 8).contiguous()
    masks = torch.zeros(n, 1, 64, 64)
    masks[:, :, 20:40, 20:40] = 1
    pool = batches.Pool(mean, torch.zeros_like(mean), torch.arange(n) % 10, masks)
    table = grounding.pair_table(tok, per_pair=2)
    torch.manual_seed(0)
    b = batches.pair(pool, table, 5, scaling=1.0, empty_p=0.0)
    assert b.z0.shape == (5, 4, 8, 16) and b.masks.shape == (5, 2, 64, 128)
    assert b.masks[:, 0, :, :64].sum() > 0 and b.masks[:, 0, :, 64:].sum() == 0
    assert b.masks[:, 1, :, 64:].sum() > 0 and b.masks[:, 1, :, :64].sum() == 0
    left, right = b.z0[:, 0, 0, 0].long(), b.z0[:, 0, 0, 15].long()  # each half is one image's latent
    keys = (left % 10) * 10 + right % 10
    for k, row in zip(keys.tolist(), b.rows.tolist()):
        assert row in table.rows[k].tolist()
    s = batches.single(pool, grounding.single_table(tok), 4, scaling=1.0, empty_p=1.0)
    assert s.z0.shape == (4, 4, 8, 8) and (s.rows == grounding.single_table(tok).empty).all()
    assert s.masks[:, 1].sum() == 0 and (s.marks == 0).all()


def test_grounding_loss_is_zero_on_its_own_garment_and_one_on_the_other():
    masks = torch.zeros(1, 2, 64, 128)
    masks[:, 0, :, :64] = 1
    masks[:, 1, :, 64:] = 1
    marks = torch.zeros(1, 77, dtype=torch.long)
    marks[0, 3], marks[0, 6] = 1, 2
    left = torch.zeros(8, 16)
    left[:, :8] = 1
    own = torch.zeros(1, 128, 77)
    own[0, :, 3] = left.flatten()
    own[0, :, 6] = 1 - left.flatten()
    assert grounding.grounding_loss([own], marks, masks).item() == pytest.approx(0.0)
    swapped = own[:, :, [0, 1, 2, 6, 4, 5, 3] + list(range(7, 77))]
    assert grounding.grounding_loss([swapped], marks, masks).item() == pytest.approx(1.0)
    assert grounding.grounding_loss([own], torch.zeros_like(marks), masks).item() == 0.0


def test_recipe_trains_pairs_with_grounding_from_an_initial_model(tmp_path, data_dir):  # noqa: F811
    from sd_explorer.core.tiny.build import build_components, save_folder

    init = save_folder(build_components(0, scaling_factor=0.5), tmp_path / "init")
    (init / "training.json").write_text(json.dumps({"settings": {"seed": "0"}, "log": [{"stage": "unet"}]}))
    out = tmp_path / "model"
    train.main(["--data", str(data_dir), "--out", str(out), "--device", "cpu", "--held-out", "8",
                "--init", str(init), "--unet-steps", "4", "--unet-stop-at", "0", "--unet-batch", "3",
                "--pair-batch", "2", "--pair-captions", "2", "--ground-weight", "0.1", "--ground-pool", "avg"])
    record = json.loads((out / "training.json").read_text())
    assert record["continued_from"] == {"settings": {"seed": "0"}}  # what it continued, without its log
    assert record["steps_done"] == {"vae": 0, "unet": 4}
    assert record["scaling_factor"] == pytest.approx(0.5)  # the initial VAE is kept
    unet_log = [e for e in record["log"] if e["stage"] == "unet"]
    assert {e["batch"] for e in unet_log} == {"single", "pair"} and all("grounding" in e for e in unet_log)
    from sd_explorer.core.models import load_model

    model = load_model(str(out), device="cpu")
    assert model.vae.config.scaling_factor == pytest.approx(0.5)
    assert all(type(p).__name__ != "GroundingProbe" for p in model.unet.attn_processors.values())


def test_avg_pooled_masks_charge_heat_on_a_garments_border_cells_and_max_pooled_do_not():
    masks = torch.zeros(1, 2, 64, 64)
    masks[:, 0, 4:60, 4:60] = 1  # a garment whose border cells (8x8 grid) are only partly garment
    marks = torch.zeros(1, 77, dtype=torch.long)
    marks[0, 3] = 1
    border = torch.zeros(8, 8)
    border[0, :] = 1  # all of the word's heat on the top row: 4 of each cell's 8 pixel rows are garment
    probs = torch.zeros(1, 64, 77)
    probs[0, :, 3] = border.flatten() / border.sum()
    assert grounding.grounding_loss([probs], marks, masks, "max").item() == pytest.approx(0.0)
    share = (2 * 0.25 + 6 * 0.5) / 8  # the row's corner cells are a quarter garment, the others half
    assert grounding.grounding_loss([probs], marks, masks, "avg").item() == pytest.approx((1 - share) ** 2)
    with pytest.raises(ValueError):
        grounding.grounding_loss([probs], marks, masks, "median")
