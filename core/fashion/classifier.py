"""A small Fashion-MNIST CNN, trained on real images, used to measure class fidelity of samples.

``classify`` accepts images in [0, 1] or [-1, 1] (or uint8), 28x28 or 32x32 (the 2-pixel padding of
the diffusion models is cropped), shaped ``[B, 1, H, W]`` or ``[B, H, W]``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..devices import pick_device
from .model import ASSETS
from .. import atomic

CLASSIFIER_WEIGHTS = ASSETS / "classifier.safetensors"


class FashionCNN(nn.Module):
    """Two conv blocks (32, 64 channels) and a 128-unit head; input [B,1,28,28] in [0, 1]."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(1, width), block(width, 2 * width))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(inplace=True),
            nn.Dropout(0.3), nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 0.5) / 0.5))


def to_classifier_input(images: torch.Tensor, value_range: str = "auto") -> torch.Tensor:
    """Normalise any accepted image batch to float ``[B, 1, 28, 28]`` in [0, 1]."""
    x = images
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[-2:]) not in ((28, 28), (32, 32)):
        raise UserError(f"classify needs [B,1,28,28] or [B,1,32,32] grayscale images, got {tuple(images.shape)}")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    else:
        x = x.float()
        if value_range == "auto":
            value_range = "-1..1" if float(x.min()) < -0.01 else "0..1"
        if value_range == "-1..1":
            x = (x + 1.0) / 2.0
    if x.shape[-1] == 32:
        x = x[..., 2:30, 2:30]
    return x.clamp(0.0, 1.0)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to 2 pixels (pad + crop)."""
    b = x.shape[0]
    flip = torch.rand(b, device=x.device, generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (2, 2, 2, 2))
    dx, dy = (int(v) for v in torch.randint(0, 5, (2,), generator=gen, device=x.device).tolist())
    return padded[..., dy:dy + 28, dx:dx + 28]


@dataclass
class ClassifierReport:
    """Training summary of the classifier."""

    train_images: int
    heldout_images: int
    heldout_accuracy: float
    per_class_accuracy: list[float]
    epochs: int
    seconds: float


def train_classifier(data, heldout: int = 1024, epochs: int = 30, batch_size: int = 128, seed: int = 0,
                     device=None) -> tuple[FashionCNN, ClassifierReport]:
    """Train on all but the last ``heldout`` images; report accuracy on those held out."""
    dev = pick_device(device)
    if len(data) <= heldout:
        raise UserError(f"Need more than {heldout} images to train the classifier")
    torch.manual_seed(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    train_x = data.images[:-heldout].to(dev).unsqueeze(1).float() / 255.0
    train_y = data.labels[:-heldout].to(dev)
    model = FashionCNN().to(dev)
    steps_per_epoch = (len(train_x) + batch_size - 1) // batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(train_x), generator=gen, device=dev)
        for s in range(steps_per_epoch):
            idx = perm[s * batch_size:(s + 1) * batch_size]
            loss = F.cross_entropy(model(_augment(train_x[idx], gen)), train_y[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    held = data.subset(len(data) - heldout)
    pred = classify(held.images, model)
    acc = class_fidelity(held.labels, pred)
    report = ClassifierReport(len(train_x), heldout, acc.overall, acc.per_class, epochs, time.perf_counter() - t0)
    return model, report


def save_classifier(model: FashionCNN, path: str | Path, report: ClassifierReport | None = None) -> Path:
    """fp32 safetensors (it is small) with the report as metadata, written atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"report": json.dumps(asdict(report))} if report else {}
    return atomic.write_replacing(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def load_classifier(device=None, path: str | Path | None = None) -> FashionCNN:
    """The shipped classifier (``assets/fashion/classifier.safetensors``) in eval mode."""
    from safetensors.torch import load_file

    path = Path(path) if path else CLASSIFIER_WEIGHTS
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall sd-explorer or train the classifier")
    model = FashionCNN()
    model.load_state_dict(load_file(str(path)))
    return model.to(pick_device(device)).eval()


@torch.no_grad()
def classify(images: torch.Tensor, model: FashionCNN | None = None, value_range: str = "auto",
             batch_size: int = 1024) -> torch.Tensor:
    """Predicted labels (int64, CPU) for a batch of images (see the module docstring)."""
    model = model or load_classifier()
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    x = to_classifier_input(images, value_range)
    out = [model(x[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


@dataclass
class FidelityReport:
    """Share of images whose predicted label is the wanted one, per class and overall."""

    overall: float
    per_class: list[float]
    counts: list[int]


def class_fidelity(wanted: torch.Tensor, got: torch.Tensor) -> FidelityReport:
    """Per-class and overall share of ``got == wanted`` (classes with no images report NaN)."""
    wanted, got = torch.as_tensor(wanted).long().cpu(), torch.as_tensor(got).long().cpu()
    if wanted.shape != got.shape:
        raise UserError("class_fidelity needs as many predictions as wanted labels")
    hit = (wanted == got).float()
    counts = torch.bincount(wanted, minlength=10)
    per = torch.zeros(10).index_add_(0, wanted, hit) / counts.clamp(min=1)
    per = torch.where(counts > 0, per, torch.full_like(per, float("nan")))
    return FidelityReport(float(hit.mean()) if len(hit) else float("nan"), per.tolist(), counts.tolist())
