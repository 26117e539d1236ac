"""Fashion-MNIST class-conditional diffusion: the chapter's first half as a fast, resumable tool.

Importing ``core.fashion`` is cheap (no torch); the names below load their submodule on first use.
Every function that takes ``cancel`` accepts a ``threading.Event``; when it is set the work stops
within one step and raises ``core.errors.Cancelled``. Bad input raises ``core.errors.UserError``.

Data — ``core.fashion.data``
    ``load_fashion_mnist(source=None, split="train") -> FashionData``
        ``source``: a folder holding the original IDX files (``train-images-idx3-ubyte[.gz]`` and
        ``train-labels-idx1-ubyte[.gz]``; ``t10k-*`` for ``split="test"``), a parquet file (columns
        ``image`` (PNG bytes / dict with ``bytes``) and ``label``), or ``None``: the environment variable
        ``SD_EXPLORER_FASHION_DATA`` if set, else ``datasets.load_dataset("fashion_mnist")`` (cache only
        when offline). Corrupt files (wrong magic, truncated, count mismatch) raise ``UserError``.
    ``FashionData``: ``.images`` uint8 tensor ``[N, 28, 28]``, ``.labels`` int64 ``[N]``, ``.source``,
        ``len()``, ``.subset(start, stop)``, ``.class_counts()``.
    ``preprocess(images_uint8, flip=None | bool tensor [B], generator=None) -> float [B,1,32,32]`` in
        [-1, 1]: the chapter's flip(p=0.5) / to [0,1] / pad 2 / normalise, batched on the tensors' device.
    ``CLASS_NAMES``: the ten class names, index = label.

Model — ``core.fashion.model``
    ``ModelConfig(block_out_channels=(32, 64, 128, 256), layers_per_block=2, ...)``; ``ModelConfig.tiny()``
        is a small CPU-friendly variant. ``build_unet(cfg) -> UNet2DModel`` (the chapter's, 15.9M params).
    ``FashionDDPM``: ``.unet``, ``.config`` (ModelConfig), ``.device``, ``.dtype``;
        ``load_shipped(device=None, dtype=None)`` returns the trained model shipped in ``assets/fashion``
        (see its MODEL_CARD.md); ``load_weights(path, device=None, dtype=None)`` loads a weights file or a
        training checkpoint (safetensors). dtype defaults to fp16 on CUDA, fp32 on CPU.

Training — ``core.fashion.train_config`` (the settings) and ``core.fashion.trainer`` (the loop)
    ``TrainConfig(epochs=25, batch_size=256, lr=3e-4, eps=1e-5, seed=0, model=ModelConfig(),
        out_dir=None, checkpoint_every_epochs=1, log_every=10, log_seconds=0, resume=None, channels_last=True,
        mixed_precision="auto", cuda_graph=True, cudnn_benchmark=True, compile=False, ema_decay=0.0,
        lr_warmup_steps=0, lr_schedule="constant", ema_warmup=False)`` (the learning rate per step:
        ``core.fashion.lr_schedule``; named recipes, the CPU default among them: ``core.fashion.recipes``);
        ``resume_config(ckpt, **overrides) -> TrainConfig`` rebuilds a run's config from its checkpoint.
    ``Trainer(config, data, device=None, on_step=None, on_epoch=None)``;
    ``trainer.run(cancel=None, pause=None) -> TrainResult`` (``.losses`` per step, ``.epoch_losses``,
        ``.final_loss``, ``.elapsed_s``, ``.images_per_s``, ``.checkpoint`` path or None, ``.step``,
        ``.ema_model``: with ``ema_decay`` > 0 the weights' moving average, ``core.ema``, which
        checkpoints keep and ``load_weights`` prefers).
        While ``pause`` is set it waits between steps (sleeping, no busy loop); when ``cancel`` is set it
        stops within one step, writes a resumable checkpoint if ``out_dir`` is set
        (``trainer.last_checkpoint``), and raises ``Cancelled``.
    ``on_step(StepStats)``: every ``log_every`` steps, after ``log_seconds`` without a report (one
        process; 0 = off), and on an epoch's last step. Fields ``step``,
        ``total_steps``, ``epoch`` (0-based), ``epochs``, ``loss`` (mean since the last call),
        ``images_per_s``, ``eta_s``, ``device``.
    ``on_epoch(EpochStats)``: ``epoch``, ``epochs``, ``mean_loss``, ``elapsed_s``, ``images_per_s``,
        ``checkpoint`` (path written at the end of this epoch, or None).
    Runs under Hugging Face Accelerate (bf16 autocast on CUDA); ``accelerate launch`` spreads a run over
    several GPUs with no code change. Resuming from a checkpoint continues the same run identically.

Checkpoints — ``core.fashion.checkpoint``
    ``save_checkpoint(out_dir, model, optimizer, state: dict) -> Path`` (one safetensors file: weights,
        optimizer state, RNG state; JSON metadata; written atomically, numbered, never overwrites);
    ``load_checkpoint(path, model=None, optimizer=None) -> dict`` (state, restoring into the objects given).

Sampling — ``core.fashion.sampler``
    ``generate_from_class(model, classes, n=8, steps=1000, seed=0, callback=None, cancel=None,
        use_graph=None, callback_every=1, compile=None) -> torch.Tensor`` float
        ``[len(classes)*n, 1, 32, 32]`` in [0, 1], class-major.
        ``steps == 1000`` is the chapter's DDPM loop, fewer steps use DDIM. On CUDA the whole denoising
        step runs as a CUDA graph (identical to eager); ``compile="default"`` torch.compiles the UNet first. ``callback(SampleStep)`` per step: ``.index``,
        ``.total``, ``.timestep``, ``.x`` and ``.x0`` (``[B,1,32,32]`` in [-1, 1], CPU copies).
    ``noising_row(image, n=8) -> (images [n,1,32,32] in [0,1], timesteps [n])``: one image noised at
        ``linspace(0, 999, n)`` timesteps (the chapter's figure).

Classifier — ``core.fashion.classifier``
    ``load_classifier(device=None)``; ``classify(images, model=None) -> labels`` (images in [0,1] or
        [-1,1], uint8 also accepted, 28x28 or 32x32 (padding cropped), shape [B,1,H,W] or [B,H,W]);
    ``class_fidelity(labels_wanted, labels_got) -> FidelityReport`` (per class and overall share).

Monitor — ``core.fashion.monitor``
    ``score_model(model, per_class=4, steps=50, seed=0, cancel=None) -> Scored`` (``.images`` class-major
        ``[10*n,1,32,32]`` in [0,1], ``.per_class``, ``.report`` FidelityReport): samples every class and
        scores them with the shipped classifier; ``epoch_model(trainer)`` is the model to score after an
        epoch (the EMA when the run keeps one). The training pane and ``fashion train`` plot/print it.
    ``core.fashion.checkpoint.prune(paths, keep)`` deletes all but a run's newest ``keep`` checkpoints.

CLI — ``core.fashion.cli.add_parser(subparsers)`` registers ``fashion train`` and ``fashion sample``.

Also: ``core.fashion.grid`` (``to_pil``, ``class_grid``; PNGs are saved by ``core.outputs.save_png``), ``core.fashion.chapter`` (the
chapter's own loops, for tests and benchmarks), ``core.fashion.train_shipped`` (rebuilds ``assets/fashion``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_fashion_mnist": "data",
    "FashionData": "data",
    "preprocess": "data",
    "CLASS_NAMES": "data",
    "ModelConfig": "model",
    "FashionDDPM": "model",
    "build_unet": "model",
    "load_shipped": "model",
    "load_weights": "model",
    "TrainConfig": "train_config",
    "Trainer": "trainer",
    "TrainResult": "trainer",
    "resume_config": "train_config",
    "StepStats": "trainer",
    "TrainState": "train_state",
    "EpochStats": "trainer",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "generate_from_class": "sampler",
    "noising_row": "sampler",
    "SampleStep": "sampler",
    "load_classifier": "classifier",
    "classify": "classifier",
    "class_fidelity": "classifier",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load the submodule that defines ``name`` on first use (keeps ``import core.fashion`` cheap)."""
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
