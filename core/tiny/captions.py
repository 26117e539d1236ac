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


def caption_table(tokenizer):
    """Token ids for every caption, padded to 77 as the pipeline does.

    Returns ``(ids [K, 77] int64, owner [K] int64)``: row ``k`` is a caption of class ``owner[k]``;
    the last row is the empty caption with owner ``-1``.
    """
    import torch

    texts, owner = [], []
    for label in range(len(PHRASES)):
        for text in all_captions(label):
            texts.append(text)
            owner.append(label)
    texts.append("")
    owner.append(-1)
    ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    return ids, torch.tensor(owner)
