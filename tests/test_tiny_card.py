"""The model card: its numbers come from ``core.tiny.card`` and meet the issue's targets."""

from __future__ import annotations

import json

import pytest

from sd_explorer.core.errors import UserError
from sd_explorer.core.tiny import ASSET_DIR, card


def _shipped() -> dict:
    return json.loads((ASSET_DIR / "card.json").read_text())


def test_shipped_card_text_is_exactly_what_the_script_renders(tmp_path):
    """MODEL_CARD.md was not edited by hand: re-rendering card.json (+ training.json) reproduces it."""
    (tmp_path / "card.json").write_text((ASSET_DIR / "card.json").read_text())
    card.rerender(ASSET_DIR, tmp_path)
    assert (tmp_path / "MODEL_CARD.md").read_text() == (ASSET_DIR / "MODEL_CARD.md").read_text()


def test_shipped_card_meets_the_targets():
    c = _shipped()
    pf = {float(k): v["overall"] for k, v in c["prompt_following"].items()}
    assert sorted(pf) == [1.0, 2.0, 4.0, 8.0]
    assert pf[1.0] < pf[2.0] < pf[4.0], "guidance must visibly matter from 1 to 4"
    assert max(pf.values()) >= 0.85
    assert c["vae"]["psnr_mean_db"] >= 28.0 and c["vae"]["held_out_images"] == 1024
    assert c["vae"]["ratio"] == 48.0 and c["vae"]["latent_shape"] == [4, 8, 8]
    assert c["size"]["weight_bytes"] <= 25 * 1024 * 1024
    for png in ("sweep.png", "classes.png", "vae.png"):
        assert (ASSET_DIR / png).stat().st_size > 1000


def test_render_puts_the_measured_numbers_in_the_text():
    c = _shipped()
    c["prompt_following"]["4"]["overall"] = 0.4321
    c["vae"]["psnr_mean_db"] = 12.34
    text = card.render_markdown(c)
    assert "**43.2%**" in text and "PSNR mean 12.34 dB" in text


@pytest.mark.slow
def test_card_script_runs_end_to_end_on_a_tiny_sample(tmp_path, fashion_dir, capsys):
    out = tmp_path / "card"
    card.main(["--model", str(ASSET_DIR), "--data", str(fashion_dir), "--out", str(out), "--device", "cpu",
               "--samples", "1", "--steps", "2", "--eval-images", "4", "--per-class", "1",
               "--judge", "own", "--judge-steps", "2"])
    written = json.loads((out / "card.json").read_text())
    assert set(written["prompt_following"]) == {"1", "2", "4", "8"}
    assert written["vae"]["held_out_images"] == 4 and written["samples"] == 1
    assert (out / "MODEL_CARD.md").read_text() == card.render_markdown(written)
    assert all((out / n).is_file() for n in card.OUTPUTS)
    with pytest.raises(UserError, match="--overwrite"):
        card.main(["--model", str(ASSET_DIR), "--data", str(fashion_dir), "--out", str(out), "--device", "cpu"])


def test_card_cli_rejects_bad_input(tmp_path, fashion_dir):
    with pytest.raises(UserError, match="model_index"):
        card.main(["--model", str(tmp_path), "--data", str(fashion_dir), "--out", str(tmp_path / "o")])
    with pytest.raises(UserError, match="--samples"):
        card.main(["--data", str(fashion_dir), "--out", str(tmp_path / "o"), "--samples", "0"])
    with pytest.raises(UserError, match="card.json"):
        card.rerender(ASSET_DIR, tmp_path)


@pytest.mark.slow
def test_cross_check_adds_the_project_classifiers_numbers(tmp_path, fashion_dir):
    from sd_explorer.core.fashion.classifier import CLASSIFIER_WEIGHTS

    if not CLASSIFIER_WEIGHTS.is_file():
        pytest.skip("assets/fashion/classifier.safetensors is not here")
    (tmp_path / "card.json").write_text((ASSET_DIR / "card.json").read_text())
    result = card.cross_check(ASSET_DIR, fashion_dir, tmp_path, samples=1, device="cpu", seed=3)
    assert set(result["prompt_following"]) == {"1", "2", "4", "8"} and result["samples"] == 1
    saved = json.loads((tmp_path / "card.json").read_text())
    assert saved["cross_check"] == result
    assert "Cross-check with core.fashion.classifier" in (tmp_path / "MODEL_CARD.md").read_text()
