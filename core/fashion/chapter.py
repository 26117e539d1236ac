"""The chapter's own code, kept as the reference the fast paths are tested and benchmarked against.

Per-image PIL transforms (torchvision is not a dependency, so ``RandomHorizontalFlip``,
``ToTensor``, ``Pad(2)`` and ``Normalize([0.5], [0.5])`` are written with PIL + numpy), a
``DataLoader`` over them, the fp32 training loop, and the eager 1000-step sampling loop with
``scheduler.step``. Nothing in the app uses these; ``bench/bench_fashion.py`` and the tests do.
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .model import build_scheduler, build_unet


def chapter_transform(image: Image.Image, flip: bool | None = None) -> torch.Tensor:
    """Compose([RandomHorizontalFlip(), ToTensor(), Pad(2), Normalize([0.5], [0.5])]) on one image."""
    if flip is None:
        flip = random.random() < 0.5
    if flip:
        image = ImageOps.mirror(image)
    x = torch.from_numpy(np.asarray(image, dtype=np.uint8).astype(np.float32) / 255.0).unsqueeze(0)
    x = F.pad(x, (2, 2, 2, 2), value=0.0)
    return (x - 0.5) / 0.5


class ChapterDataset(torch.utils.data.Dataset):
    """PIL images transformed one at a time, as ``dataset.with_transform(transform)`` does."""

    def __init__(self, data) -> None:
        self.images = [Image.fromarray(a, mode="L") for a in data.images.numpy()]
        self.labels = data.labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"images": chapter_transform(self.images[i]), "labels": self.labels[i]}


def chapter_train(data, epochs: int, device: str = "cuda", batch_size: int = 256, seed: int = 0) -> dict:
    """The chapter's training loop (fp32, DataLoader, ``scheduler.add_noise``); returns timings and losses."""
    torch.manual_seed(seed)
    random.seed(seed)
    loader = torch.utils.data.DataLoader(ChapterDataset(data), batch_size=batch_size, shuffle=True)
    scheduler = build_scheduler()
    model = build_unet().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, eps=1e-5)
    losses, epoch_losses, images = [], [], 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            clean = batch["images"].to(device)
            labels = batch["labels"].to(device)
            noise = torch.randn(clean.shape).to(device)
            ts = torch.randint(0, scheduler.config.num_train_timesteps, (clean.shape[0],), device=device).long()
            noisy = scheduler.add_noise(clean, noise, ts)
            pred = model(noisy, ts, class_labels=labels, return_dict=False)[0]
            loss = F.mse_loss(pred, noise)
            loss.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            images += clean.shape[0]
        n = len(loader)
        epoch_losses.append(sum(losses[-n:]) / n)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "images_per_s": images / secs, "epoch_losses": epoch_losses,
            "final_loss": epoch_losses[-1], "model": model}


@torch.no_grad()
def chapter_generate_from_class(model, scheduler, class_to_generate: int, n_samples: int = 8,
                                device: str = "cuda") -> torch.Tensor:
    """The chapter's ``generate_from_class``: eager loop over all scheduler timesteps."""
    sample = torch.randn(n_samples, 1, 32, 32).to(device)
    c = torch.full((n_samples,), class_to_generate, device=device)
    for t in scheduler.timesteps:
        noise_pred = model(sample, t, class_labels=c).sample
        sample = scheduler.step(noise_pred, t, sample).prev_sample
    return sample.clip(-1, 1) * 0.5 + 0.5
