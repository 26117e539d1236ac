"""The shipped tiny model's words pick places (issue 25): its heat maps show *where* on held-out prompts.

Two garments at 128x64: each word's heat sits on its own half (>= 2x the other half's); one garment at
64x64: the word's heat sits on the garment (>= 1.5x off it). Through the app's own sampler and heat-map
recorder (``core.tiny.placement``, what ``sd-explorer attention`` draws), one image per prompt, few steps.
"""

from __future__ import annotations

import pytest

from sd_explorer.core.models import load_model
from sd_explorer.core.tiny import captions, placement

STEPS = 12


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", device="cpu", dtype="fp32", fast=False)


def _half_ratios(model, prompt: str, left: int, right: int, seed: int) -> tuple[float, float]:
    _, maps = placement._run(model, prompt, 1, seed, STEPS, placement.SCALE, placement.PAIR_SIZE)
    return (placement.half_ratio(placement._word_heat(model, prompt, maps, left)[0], True),
            placement.half_ratio(placement._word_heat(model, prompt, maps, right)[0], False))


@pytest.mark.parametrize("k", [0, 4, 9])  # one prompt of each held-out template
def test_each_garment_word_heats_its_own_half_of_a_two_garment_image(tiny, k):
    prompt, left, right = captions.PAIR_PROMPTS[k]
    left_ratio, right_ratio = _half_ratios(tiny, prompt, left, right, placement.SEED + k)
    assert left_ratio >= placement.HALF_TARGET, (prompt, left_ratio)
    assert right_ratio >= placement.HALF_TARGET, (prompt, right_ratio)


def test_swapping_the_words_swaps_the_halves(tiny):
    """The heat follows the word, not the side: with left and right swapped in the prompt, the same word's
    heat moves to the other half."""
    sneaker, bag = captions.HEAT_WORDS.index("sneaker"), captions.HEAT_WORDS.index("bag")
    _, maps = placement._run(tiny, "a photo of a sneaker on the left and a bag on the right", 1, 7, STEPS,
                             placement.SCALE, placement.PAIR_SIZE)
    prompt = "a photo of a sneaker on the left and a bag on the right"
    assert placement.half_ratio(placement._word_heat(tiny, prompt, maps, sneaker)[0], True) > placement.HALF_TARGET
    assert placement.half_ratio(placement._word_heat(tiny, prompt, maps, bag)[0], False) > placement.HALF_TARGET


@pytest.mark.parametrize("cls", [1, 7, 9])  # trousers, sneaker, boot
def test_a_single_garments_word_heats_the_garment(tiny, cls):
    prompt = placement.OBJECT_TEMPLATE.format(captions.PHRASES[cls][0])
    images, maps = placement._run(tiny, prompt, 1, placement.SEED + 100 + cls, STEPS, placement.SCALE, None)
    heat = placement._word_heat(tiny, prompt, maps, cls)[0]
    mask = placement.object_mask(images, heat.shape[-2:])[0]
    assert mask.any() and (~mask).any(), "the image should show a garment on black"
    ratio = heat[mask].mean() / heat[~mask].mean()
    assert ratio >= placement.OBJECT_TARGET, (prompt, ratio)


def test_asking_a_pixel_names_its_own_halfs_garment_first(tiny):
    """Issue 25's done criterion for ``--at``: at the middle of each half's garment, the ranking's first word is that
    half's garment (``core.pixel_attention.rank_at``, what ``attention --at`` and the sweep pane's cursor print)."""
    import numpy as np

    from sd_explorer.core.pixel_attention import rank_at
    from sd_explorer.core.tokens import breakdown

    prompt, left, right = captions.PAIR_PROMPTS[4]  # "a sandal next to a dress": held out
    images, maps = placement._run(tiny, prompt, 1, placement.SEED, STEPS, placement.SCALE, placement.PAIR_SIZE)
    gray = (images[0].mean(0).numpy() + 1) / 2  # [64, 128]
    tokens = breakdown(tiny.tokenizer, prompt).tokens
    for cls, x0 in ((left, 0), (right, 64)):
        ys, xs = np.nonzero(gray[:, x0:x0 + 64] > 0.5)
        assert len(xs), "each half shows a garment"
        x, y = x0 + int(np.median(xs)), int(np.median(ys))
        ranking = rank_at(maps[0], tokens, x, y, placement.PAIR_SIZE)
        first = next(t for t in ranking.tokens if not t.special)
        assert first.text == captions.HEAT_WORDS[cls], (x, y, [(t.text, round(t.of_words, 3)) for t in ranking.tokens])
