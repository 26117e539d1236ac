"""SD 1.5- and SDXL-shaped pipelines with random weights, built from the real configs, on the device.

No weights can be downloaded, and speed depends only on the shapes, so the benchmark builds the
real architectures (``../shared/docs/model-shapes.md``) with random initialisation. Modules are
created directly on the target device (``with torch.device(...)``) and then cast to fp16: building
2.6B parameters on the CPU and moving them would take longer than the benchmark itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 steps_offset=1, set_alpha_to_one=False, prediction_type="epsilon")

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768, attention_head_dim=8,
)
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
    cross_attention_dim=2048, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512,
)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
CLIP_BIGG = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                 num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)
TOKEN_IDS = dict(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)


def _build(factory, device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.device(device):
        module = factory()
    return module.to(dtype=dtype).eval().requires_grad_(False)


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sd15_model(device: str = "cuda", dtype: torch.dtype = torch.float16, seed: int = 0):
    """A ``core.models.LoadedModel`` with SD 1.5's shapes (UNet 859.5M, VAE 83.7M, CLIP-L text 123.1M)."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sd_explorer.core.clip_vocab import clip_tokenizer
    from sd_explorer.core.models import SD_PREVIEW, LoadedModel

    dev = torch.device(device)
    unet = _build(lambda: UNet2DConditionModel(**SD15_UNET), dev, dtype, seed)
    vae = _build(lambda: AutoencoderKL(**VAE, scaling_factor=0.18215), dev, dtype, seed + 1)
    text = _build(lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L, **TOKEN_IDS)), dev, dtype, seed + 2)
    scheduler = PNDMScheduler(skip_prk_steps=True, **SCHEDULER)
    return LoadedModel(spec="sd15-shaped", folder=ROOT, family="sd1", tokenizer=clip_tokenizer(),
                       text_encoder=text, unet=unet, vae=vae, scheduler=scheduler, device=dev, dtype=dtype,
                       preview_factors=torch.tensor(SD_PREVIEW))


def sd15_pipeline(model):
    """diffusers' ``StableDiffusionPipeline`` sharing ``model``'s modules (same weights, same scheduler)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer, unet=model.unet,
        scheduler=type(model.scheduler).from_config(model.scheduler.config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sdxl_pipeline(device: str = "cuda", dtype: torch.dtype = torch.float16, seed: int = 0):
    """diffusers' ``StableDiffusionXLPipeline`` with SDXL base's shapes (UNet ~2.57B) and random weights."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from sd_explorer.core.clip_vocab import clip_tokenizer

    dev = torch.device(device)
    unet = _build(lambda: UNet2DConditionModel(**SDXL_UNET), dev, dtype, seed)
    vae = _build(lambda: AutoencoderKL(**VAE, scaling_factor=0.13025), dev, dtype, seed + 1)
    text = _build(lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L, **TOKEN_IDS)), dev, dtype, seed + 2)
    text_2 = _build(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG, **TOKEN_IDS)), dev, dtype, seed + 3)
    sched = {k: v for k, v in SCHEDULER.items() if k != "set_alpha_to_one"}
    scheduler = EulerDiscreteScheduler(timestep_spacing="leading", **sched)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text, text_encoder_2=text_2, tokenizer=clip_tokenizer(),
                                     tokenizer_2=clip_tokenizer(), unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe
