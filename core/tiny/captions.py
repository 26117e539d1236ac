"""Captions for Fashion-MNIST: varied templates that name the class, some empty for guidance.

Every class has a few noun phrases ("a sneaker", "a running shoe"); every template places one in
a sentence ("product shot of {}"). A training caption is a random template x phrase for the
image's class, or ``""`` with probability ``EMPTY_P`` so the model also learns the unconditional
prediction that classifier-free guidance subtracts.
"""

from __future__ import annotations

import random

EMPTY_P = 0.1

PHRASES: tuple[tuple[str, ...], ...] = (
    ("a t-shirt", "a top", "a tee", "a t-shirt top"),
    ("trousers", "a pair of trousers", "pants", "a pair of jeans"),
    ("a pullover", "a sweater", "a jumper"),
    ("a dress", "a summer dress", "a long dress"),
    ("a coat", "a jacket", "a winter coat"),
    ("a sandal", "a pair of sandals", "a summer sandal"),
    ("a shirt", "a button-up shirt", "a collared shirt"),
    ("a sneaker", "a running shoe", "a trainer"),
    ("a bag", "a handbag", "a purse"),
    ("an ankle boot", "a boot", "a pair of boots"),
)

TEMPLATES: tuple[str, ...] = (
    "{}",
    "a photo of {}",
    "a picture of {}",
    "product shot of {}",
    "a black and white photo of {}",
    "a grayscale image of {}",
    "a small photo of {}",
    "{} on a black background",
    "an image of {}",
    "catalog photo of {}",
)

#: The prompts the model card measures: one per class, in the chapter's style.
PROMPTS: tuple[str, ...] = tuple(f"a photo of {phrases[0]}" for phrases in PHRASES)


def all_captions(label: int) -> list[str]:
    """Every non-empty caption of class ``label`` (templates x phrases)."""
    if not 0 <= label < len(PHRASES):
        raise ValueError(f"label {label} is not a Fashion-MNIST class (0-9)")
    return [t.format(p) for t in TEMPLATES for p in PHRASES[label]]


def caption(label: int, rng: random.Random, empty_p: float = EMPTY_P) -> str:
    """One training caption for ``label``: ``""`` with probability ``empty_p``, else a random one."""
    if rng.random() < empty_p:
        return ""
    return rng.choice(TEMPLATES).format(rng.choice(PHRASES[label]))


# ---------------------------------------------------------------- two garments side by side (128x64)
#: Two-garment captions as users phrase them: ``{a}`` is the left garment, ``{b}`` the right one;
#: "next to", "and", "beside" and a plain list read left then right.
PAIR_TEMPLATES: tuple[str, ...] = (
    "{a} on the left and {b} on the right",
    "a photo of {a} on the left and {b} on the right",
    "{b} on the right and {a} on the left",
    "a picture of {b} on the right and {a} on the left",
    "{a} next to {b}",
    "a photo of {a} next to {b}",
    "{a} and {b}",
    "a photo of {a} and {b}",
    "{a} beside {b}",
    "{a} to the left of {b}",
    "{b} to the right of {a}",
    "product shot of {a} and {b}",
    "{a} and {b} side by side",
    "a black and white photo of {a} next to {b}",
)

#: Held-out two-garment prompts the card measures, never a training caption:
#: ``(prompt, left class, right class)``; the first two are the issue's own examples.
PAIR_PROMPTS: tuple[tuple[str, int, int], ...] = tuple(
    (template.format(a=PHRASES[a][0], b=PHRASES[b][0]), a, b)
    for template, pairs in (
        ("a photo of {a} on the left and {b} on the right", ((8, 7), (1, 9), (0, 5), (4, 3))),
        ("{a} next to {b}", ((5, 3), (7, 8), (9, 0), (3, 1))),
        ("{b} on the right and {a} on the left", ((2, 9), (8, 1), (7, 4), (6, 5))),
    )
    for a, b in pairs
)

#: The word of each class whose heat maps the card reads (a word of several tokens: their sum).
HEAT_WORDS: tuple[str, ...] = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt",
                               "sneaker", "bag", "boot")
