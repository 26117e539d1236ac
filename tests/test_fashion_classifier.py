"""The fidelity classifier: input handling, fidelity arithmetic, and the shipped weights' accuracy."""

from __future__ import annotations

import json

import pytest
import torch

from sd_explorer.core.errors import UserError
from sd_explorer.core.fashion.classifier import (
    CLASSIFIER_WEIGHTS, FashionCNN, class_fidelity, classify, load_classifier, to_classifier_input,
)
from sd_explorer.core.fashion.data import load_fashion_mnist, preprocess


def test_input_forms_agree(fashion_dir):
    imgs = load_fashion_mnist(fashion_dir).images[:6]
    ref = imgs.float().unsqueeze(1) / 255.0
    padded = preprocess(imgs, flip=False)  # [-1, 1], 32x32
    for form in (imgs, imgs.unsqueeze(1), ref, ref * 2 - 1, padded, (padded + 1) / 2):
        assert torch.allclose(to_classifier_input(form), ref, atol=1e-6)
    torch.manual_seed(0)
    model = FashionCNN().eval()
    assert torch.equal(classify(imgs, model), classify(padded, model))
    with pytest.raises(UserError, match="grayscale"):
        to_classifier_input(torch.zeros(2, 3, 28, 28))


def test_fidelity_arithmetic():
    wanted = torch.tensor([0, 0, 1, 1, 1, 9])
    got = torch.tensor([0, 5, 1, 1, 2, 9])
    rep = class_fidelity(wanted, got)
    assert rep.overall == pytest.approx(4 / 6)
    assert rep.per_class[0] == pytest.approx(0.5) and rep.per_class[1] == pytest.approx(2 / 3)
    assert rep.per_class[9] == 1.0 and rep.counts[1] == 3
    assert rep.per_class[4] != rep.per_class[4]  # NaN where a class has no images
    with pytest.raises(UserError):
        class_fidelity(wanted, got[:3])


@pytest.mark.skipif(not CLASSIFIER_WEIGHTS.is_file(), reason="shipped classifier not built yet")
def test_shipped_classifier_heldout_accuracy(fashion_dir):
    from safetensors import safe_open

    held = load_fashion_mnist(fashion_dir).subset(8192 - 1024)  # never trained on
    pred = classify(held.images, load_classifier("cpu"))
    acc = class_fidelity(held.labels, pred).overall
    with safe_open(str(CLASSIFIER_WEIGHTS), framework="pt") as fh:
        recorded = json.loads(fh.metadata()["report"])["heldout_accuracy"]
    assert acc > 0.85
    assert acc == pytest.approx(recorded, abs=0.01)  # the model card's number is reproducible on CPU
