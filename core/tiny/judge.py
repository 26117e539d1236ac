"""Which Fashion-MNIST class is this image? The classifier the model card measures prompts with.

Prefers the project's classifier (``core.fashion.classifier``, issue 4, weights in
``assets/fashion/``). When that is not available, ``train_judge`` fits a small CNN here on the
training split only (the held-out images stay unseen) and the card says which one it used.
Both take ``[N, 1, 32, 32]`` images in [-1, 1] (``core.tiny.data.to_fashion``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..fashion.data import FashionData
from .data import to_fashion, to_model_images


@dataclass
class Judge:
    """A classifier: ``predict(images [N,1,32,32] in [-1,1]) -> labels [N]`` and where it came from."""

    predict: Callable[[torch.Tensor], torch.Tensor]
    source: str


def _cnn() -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128), nn.Flatten(),
                         nn.Dropout(0.3), nn.Linear(128 * 4 * 4, 10))


def fashion_batch(images) -> torch.Tensor:
    """``uint8 [N, 28, 28]`` -> ``[N, 1, 32, 32]`` in [-1, 1], exactly as generated images are seen."""
    return to_fashion(to_model_images(images))


def train_judge(train: FashionData, steps: int, device: torch.device | str, seed: int = 0,
                batch: int = 256) -> nn.Module:
    """Fit the fallback CNN on ``train`` (random flips and 1-px shifts); returns it in eval mode."""
    torch.manual_seed(seed)
    device = torch.device(device)
    x_all = fashion_batch(train.images.to(device))
    y_all = train.labels.to(device)
    model = _cnn().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=max(steps, 1))
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x_all.shape[0], (batch,), device=device)
        x = x_all[idx]
        x = torch.where((torch.rand(batch, device=device) < 0.5)[:, None, None, None], x.flip(-1), x)
        dx, dy = (int(v) for v in torch.randint(-1, 2, (2,)))
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        loss = F.cross_entropy(model(x), y_all[idx], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, size: int = 1024) -> torch.Tensor:
    return torch.cat([fn(images[i:i + size]) for i in range(0, images.shape[0], size)])


def load_judge(train: FashionData, device: torch.device | str, steps: int, prefer: str = "auto") -> Judge:
    """The project's classifier when ``prefer`` is ``auto``/``fashion`` and it loads; else our CNN."""
    if prefer in ("auto", "fashion"):
        try:
            from ..fashion.classifier import classify, load_classifier

            project_model = load_classifier(device)

            def predict(x: torch.Tensor) -> torch.Tensor:
                return classify(x.float(), model=project_model, value_range="-1..1").to(x.device).long()

            return Judge(predict, "core.fashion.classifier (assets/fashion/classifier.safetensors)")
        except (ImportError, OSError, UserError) as exc:
            if prefer == "fashion":
                raise
            print(f"core.fashion.classifier not usable ({type(exc).__name__}: {exc}); training our own CNN")
    model = train_judge(train, steps, device)

    @torch.no_grad()
    def predict_own(x: torch.Tensor) -> torch.Tensor:
        return _batched(lambda b: model(b.to(device).float()).argmax(1).to(x.device), x)

    return Judge(predict_own, f"core.tiny.judge CNN trained here on the {len(train.labels)} training images "
                              f"({steps} steps)")
