"""The shipped class-conditional DDPM: chapter architecture, fp16 file, and it has learned classes."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from sd_explorer.core.fashion.data import load_fashion_mnist, preprocess
from sd_explorer.core.fashion.model import ASSETS, SHIPPED_WEIGHTS, ModelConfig, alphas_cumprod, build_unet, load_shipped


def test_shipped_file_is_fp16_chapter_model():
    from safetensors import safe_open

    with safe_open(str(SHIPPED_WEIGHTS), framework="pt") as fh:
        cfg = ModelConfig.from_json(fh.metadata()["fashion_model_config"])
        dtypes = {fh.get_slice(k).get_dtype() for k in fh.keys()}
    assert cfg == ModelConfig() and dtypes == {"F16"}
    assert SHIPPED_WEIGHTS.stat().st_size < 33_000_000
    total = sum(p.stat().st_size for p in ASSETS.iterdir())
    assert total < 35 * 1024 * 1024

def test_shipped_results_meet_the_bar_and_the_card_is_rendered_from_them(tmp_path):
    """Issue 12's bar, read from what the GPU runs measured, and MODEL_CARD.md is their rendering."""
    import shutil

    from sd_explorer.core.fashion.card import write_card

    r = json.loads((ASSETS / "training_results.json").read_text())
    ship = r["shipped"]
    assert ship["steps"] >= 12_000 and ship["weights"] == "ema"
    assert ship["steps"] == sum(s["steps"] for s in r["stages"])
    ddpm, ddim = ship["fidelity_ddpm1000"], ship["fidelity_ddim50"]
    assert ddpm["overall"] >= 0.90 and ddpm["overall"] >= r["classifier"]["heldout_accuracy"]
    assert ddim["overall"] >= 0.88 and min(ddpm["per_class"]) >= 0.75
    assert abs(ddpm["mean_brightness"] - r["real_mean_brightness"]) <= 0.03
    assert abs(ddim["mean_brightness"] - r["real_mean_brightness"]) <= 0.03
    for name in ("training_results.json", "samples_grid.png"):
        shutil.copy(ASSETS / name, tmp_path / name)
    write_card(tmp_path)
    assert (tmp_path / "MODEL_CARD.md").read_text() == (ASSETS / "MODEL_CARD.md").read_text()
    assert (tmp_path / "training_curve.png").read_bytes() == (ASSETS / "training_curve.png").read_bytes()


def test_shipped_samples_are_their_classes_on_the_cpu():
    """The fidelity measurement end to end on the CPU (fp32): DDIM 20 steps, one sample per class."""
    from sd_explorer.core.fashion.classifier import class_fidelity, classify, load_classifier
    from sd_explorer.core.fashion.sampler import generate_from_class

    images = generate_from_class(load_shipped("cpu"), list(range(10)), n=1, steps=20, seed=0)
    report = class_fidelity(torch.arange(10), classify(images, load_classifier("cpu")))
    # measured here: 7 of 10 (DDIM 20, one per class); the GPU measured 91.8 % with DDIM 50 on 50 per class;
    # chance is 10 %, and the under-trained model this replaced scored 31 % even with DDIM 50
    assert report.overall >= 0.6, report
    assert abs(float(images.mean()) - 0.219) <= 0.05  # not the washed-out grey of an under-trained model


def test_shipped_model_denoises_and_uses_the_class(fashion_dir):
    model = load_shipped("cpu")
    assert model.dtype == torch.float32 and sum(p.numel() for p in model.unet.parameters()) == 15_892_033
    held = load_fashion_mnist(fashion_dir).subset(8192 - 32)
    x = preprocess(held.images, flip=False)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((32,), 300)
    ab = alphas_cumprod(model.config)[t].view(-1, 1, 1, 1)
    noisy = ab.sqrt() * x + (1 - ab).sqrt() * noise
    torch.manual_seed(0)
    untrained = build_unet().eval()
    with torch.no_grad():
        right = F.mse_loss(model.unet(noisy, t, class_labels=held.labels).sample, noise).item()
        wrong = F.mse_loss(model.unet(noisy, t, class_labels=(held.labels + 5) % 10).sample, noise).item()
        base = F.mse_loss(untrained(noisy, t, class_labels=held.labels).sample, noise).item()
    assert right < 0.05 and base > 0.5  # measured: 0.028 vs 1.35
    assert right < 0.8 * wrong  # the class label helps (measured 0.028 vs 0.045 with wrong labels)


def test_train_shipped_runs_end_to_end_on_the_cpu(fashion_dir, tmp_path):
    """The GPU script that makes assets/fashion, in miniature (tiny UNet, 64 images): recipe, extension,
    weights and their EMA measured side by side, the better one shipped, the grid and results.json."""
    import json

    from sd_explorer.core.fashion.train_shipped import main

    out = tmp_path / "ship"
    assert main(["--data", str(fashion_dir), "--out", str(out), "--tiny", "--limit", "64", "--epochs", "1",
                 "--extra-epochs", "1", "--per-class", "1", "--steps", "10", "--ema", "0.5", "--target", "1.01",
                 "--classifier", "assets/fashion/classifier.safetensors"]) == 0
    results = json.loads((out / "results.json").read_text())
    for stage, epochs in (("recipe", 1), ("extended", 2)):
        run = results[stage]
        assert run["epochs"] == epochs and set(run["candidates"]) == {"weights", "ema"}
        assert run["chosen"] in ("weights", "ema") and run["file"] == run["candidates"][run["chosen"]]["file"]
        assert 0 <= run["fidelity_ddpm1000"]["overall"] <= 1 and run["fidelity_ddpm1000"]["steps"] == 10
    assert (out / "ddpm.safetensors").read_bytes() == (out / results["shipped"]["file"]).read_bytes()
    assert (out / "samples_grid.png").is_file() and (out / "ddpm-e2-ema.safetensors").is_file()
