"""The tiny model's architecture: SD 1.x's component types at a Fashion-MNIST scale.

Images are 64x64 RGB (a 28x28 Fashion-MNIST image padded to 32, upsampled x2, repeated in 3
channels). The VAE downsamples /8 as SD does, to 4x8x8 latents: 3*64*64 = 12,288 values -> 256,
the same 48x as SD's 3x512x512 -> 4x64x64. The UNet denoises 4x8x8 latents with cross-attention
on the text encoder's per-token states (64-d, vs SD's 768). The text encoder keeps CLIP's 49,408-id
vocabulary so the real CLIP tokenizer's ids work unchanged.

Plain dictionaries only: importing this module does not import torch or diffusers.
"""

from __future__ import annotations

from typing import Any

IMAGE_SIZE = 64
LATENT_CHANNELS = 4
VAE_SCALE = 8
LATENT_SIZE = IMAGE_SIZE // VAE_SCALE
TEXT_DIM = 64
#: Placeholder until the VAE is trained; ``train`` replaces it with 1 / std(latents), as SD did.
DEFAULT_SCALING_FACTOR = 1.0

TEXT_ENCODER: dict[str, Any] = dict(
    vocab_size=49408,
    hidden_size=TEXT_DIM,
    intermediate_size=4 * TEXT_DIM,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    projection_dim=TEXT_DIM,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)

VAE: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(32, 64, 64, 64),
    layers_per_block=2,
    latent_channels=LATENT_CHANNELS,
    norm_num_groups=16,
    sample_size=IMAGE_SIZE,
    scaling_factor=DEFAULT_SCALING_FACTOR,
)

UNET: dict[str, Any] = dict(
    sample_size=LATENT_SIZE,
    in_channels=LATENT_CHANNELS,
    out_channels=LATENT_CHANNELS,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(64, 128, 128),
    layers_per_block=1,
    cross_attention_dim=TEXT_DIM,
    attention_head_dim=8,
    norm_num_groups=32,
)

#: SD 1.x's noise schedule; training uses DDPMScheduler with these betas, the folder ships PNDM
#: (as SD 1.x does), and any diffusers scheduler can be built from it with ``from_config``.
SCHEDULE: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
)

SCHEDULER: dict[str, Any] = dict(
    SCHEDULE,
    skip_prk_steps=True,
    steps_offset=1,
    set_alpha_to_one=False,
)

#: ``model_index.json``: a StableDiffusionPipeline whose tokenizer the loader injects
#: (``core.clip_vocab.clip_tokenizer()``), with no safety checker.
MODEL_INDEX: dict[str, Any] = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.42.1",
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": [None, None],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
