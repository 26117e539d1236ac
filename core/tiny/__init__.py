"""The embedded default model: a tiny Stable Diffusion trained by this project.

Same component types as Stable Diffusion 1.x (``CLIPTextModel``, ``AutoencoderKL`` with 4 latent
channels and a /8 downsampling, ``UNet2DConditionModel`` with cross-attention, a scheduler), sized to
run a guidance sweep in about a second on a 2-core CPU, trained on captioned Fashion-MNIST.

Modules (import them directly; importing this package pulls in nothing heavy):

- ``core.tiny.configs``  — the architecture (plain dicts, no torch at import).
- ``core.tiny.build``    — random init + save as a diffusers folder (``python -m sd_explorer.core.tiny.build``).
- ``core.tiny.data``     — reading Fashion-MNIST IDX files, 28x28 -> 64x64 RGB tensors.
- ``core.tiny.captions`` — caption templates naming the class, with empty captions for CFG.
- ``core.tiny.train``    — the reproducible training recipe (``python -m sd_explorer.core.tiny.train``).
- ``core.tiny.judge``    — the Fashion-MNIST classifier the card measures prompt following with.
- ``core.tiny.card``     — measures the model and writes ``MODEL_CARD.md`` + grid images.
- ``core.tiny.preview``  — fits the VAE's latent -> RGB preview factors (``preview_factors.json``).
"""

from __future__ import annotations

from pathlib import Path

#: Where the shipped model lives (a diffusers folder).
ASSET_DIR = Path(__file__).resolve().parents[2] / "assets" / "tiny-sd"
