"""SD-shaped pipelines with random weights, built from the real configs scaled down.

The block structure (block types, attention placement, prediction type, scheduler settings, VAE
scaling factor) is the real models' (``../shared/docs/model-shapes.md``); only widths and depths
shrink so a CPU can run them. Saved with ``save_pretrained`` and loaded by path, as users do.
"""

from __future__ import annotations

from pathlib import Path

import torch


def build_pipeline(family: str = "sd1", seed: int = 0):
    from diffusers import AutoencoderKL, DDIMScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sd_explorer.core.clip_vocab import clip_tokenizer

    torch.manual_seed(seed)
    sd2 = family.startswith("sd2")
    hidden = 64 if sd2 else 32
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=hidden,
        attention_head_dim=(2, 4, 8, 8) if sd2 else 8,
        use_linear_projection=sd2,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=64, scaling_factor=0.18215,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77,
        hidden_act="gelu" if sd2 else "quick_gelu",
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    ))
    common = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                  steps_offset=1, set_alpha_to_one=False)
    if family == "sd2v":  # SD 2.x 768 models: v-prediction
        scheduler = DDIMScheduler(prediction_type="v_prediction", clip_sample=False, **common)
    else:
        scheduler = PNDMScheduler(skip_prk_steps=True, prediction_type="epsilon", **common)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def save_pipeline(folder: Path, family: str = "sd1", with_tokenizer: bool = True) -> Path:
    pipe = build_pipeline(family)
    pipe.save_pretrained(folder, safe_serialization=True)
    if not with_tokenizer:
        import shutil

        shutil.rmtree(folder / "tokenizer", ignore_errors=True)
    return folder


def _sdxl_vae_and_scheduler():
    """SDXL's VAE (scaling 0.13025, upcast in fp16) scaled down, and its Euler schedule."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler

    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=64, scaling_factor=0.13025, force_upcast=True,
    )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading",
                                       prediction_type="epsilon")
    return vae, scheduler


def build_sdxl_pipeline(seed: int = 0):
    """SDXL base's structure scaled down: two text encoders (CLIP + OpenCLIP-with-projection, penultimate
    states concatenated), text_time added conditioning (pooled + 6 time ids), Euler, VAE factor 0.13025."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from sd_explorer.core.clip_vocab import clip_tokenizer

    torch.manual_seed(seed)
    text_cfg = dict(vocab_size=49408, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=16, hidden_act="quick_gelu", **text_cfg))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=32, projection_dim=32,
                                                                hidden_act="gelu", **text_cfg))
    time_dim = 8
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2), attention_head_dim=(2, 4), use_linear_projection=True,
        cross_attention_dim=16 + 32, addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + 32,
    )
    vae, scheduler = _sdxl_vae_and_scheduler()
    return StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(), unet=unet,
                                     scheduler=scheduler, force_zeros_for_empty_prompt=True)


def save_sdxl_pipeline(folder: Path) -> Path:
    build_sdxl_pipeline().save_pretrained(folder, safe_serialization=True)
    return folder


def build_sdxl_refiner_pipeline(seed: int = 1):
    """SDXL refiner's structure scaled down: only the second text encoder (OpenCLIP-with-projection,
    penultimate states, 32 wide here as 1280 is there), text_time conditioning with 5 time ids (original
    size, crop top-left, aesthetic score: ``5 * time_dim + pooled``), the base's VAE and Euler settings."""
    from diffusers import StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from sd_explorer.core.clip_vocab import clip_tokenizer

    torch.manual_seed(seed)
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, projection_dim=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
    time_dim = 8
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1), attention_head_dim=(2, 4), use_linear_projection=True,
        cross_attention_dim=32, addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=5 * time_dim + 32,
    )
    vae, scheduler = _sdxl_vae_and_scheduler()
    return StableDiffusionXLImg2ImgPipeline(vae=vae, text_encoder=None, text_encoder_2=text_encoder_2,
                                            tokenizer=None, tokenizer_2=clip_tokenizer(), unet=unet,
                                            scheduler=scheduler, requires_aesthetics_score=True,
                                            force_zeros_for_empty_prompt=False)


def save_sdxl_refiner_pipeline(folder: Path) -> Path:
    build_sdxl_refiner_pipeline().save_pretrained(folder, safe_serialization=True)
    return folder
