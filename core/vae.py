"""Latent diffusion's compressor: encode an image to 4 latent channels, look at them, decode it back.

The chapter: a 3x512x512 image (786,432 values) becomes 4x64x64 latents (16,384 values), 48x fewer;
``latent_dist.sample() * scaling_factor`` on the way in, ``/ scaling_factor`` on the way out.
Every number here is computed from the actual tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError
from .paths import expand
from .finite import check_result

MAX_PIXELS = 64_000_000  # refuse before decoding anything larger (20000x20000 = 400M)


# -- the VAE's two conventions, written once: pixels in [-1, 1], latents times ``scaling_factor`` ---------
def to_vae_range(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] -> the VAE's input range [-1, 1]."""
    return pixels * 2 - 1


def to_pixel_range(x: torch.Tensor) -> torch.Tensor:
    """The VAE's output in [-1, 1] -> pixels in [0, 1] (float32, clamped)."""
    return (x.float() / 2 + 0.5).clamp(0, 1)


def scale_latents(vae, raw: torch.Tensor) -> torch.Tensor:
    """The VAE encoder's latents -> the UNet's space: times ``scaling_factor`` (unit variance, as the
    chapter's ``* 0.18215``)."""
    return raw * vae.config.scaling_factor


def unscale_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """The UNet's latents -> the VAE decoder's input: ÷ ``scaling_factor``."""
    return latents / vae.config.scaling_factor


def image_tensor(image: Image.Image) -> torch.Tensor:
    """An 8-bit RGB image -> ``[1, 3, H, W]`` float32 pixels in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def encode(vae, pixels: torch.Tensor, generator=None) -> torch.Tensor:
    """Pixels in [0, 1] ``[B, 3, H, W]`` -> latents sampled from the VAE's posterior, times ``scaling_factor``
    (the space the UNet works in: unit variance, as the chapter's ``* 0.18215``)."""
    x = to_vae_range(pixels).to(vae.device, vae.dtype)
    return scale_latents(vae, vae.encode(x).latent_dist.sample(generator))


def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents in the UNet's space -> pixels in [0, 1] ``[B, 3, H, W]`` (float32): ``/ scaling_factor``,
    the decoder, [-1, 1] -> [0, 1]. Differentiable (colour-loss guidance takes its gradient)."""
    return to_pixel_range(vae.decode(unscale_latents(vae, latents).to(vae.dtype)).sample)


def to_images(pixels: torch.Tensor) -> list[Image.Image]:
    """Pixels in [0, 1] ``[B, 3, H, W]`` -> 8-bit PIL images."""
    array = pixels.detach().permute(0, 2, 3, 1).float().cpu().numpy()
    return [Image.fromarray(a) for a in (array * 255).round().astype(np.uint8)]


def load_image(path: str | Path) -> Image.Image:
    """Open any common image as 8-bit RGB, refusing non-images, truncated files and giant sizes."""
    path = expand(path, "the image")
    if path.is_dir():
        raise UserError(f"{path} is a folder: give the path of an image file in it (PNG, JPEG, WebP…).")
    if not path.is_file():
        raise UserError(f"{path} does not exist: give the path of an image file (PNG, JPEG, WebP…).")
    try:
        with Image.open(path) as probe:
            w, h = probe.size
            if w * h > MAX_PIXELS:
                raise UserError(f"{path} is {w}x{h}, too large to encode: resize it below {MAX_PIXELS // 1_000_000} megapixels.")
            probe.load()
            image = ImageOps.exif_transpose(probe)
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError(f"{path} is too large to encode: resize it below {MAX_PIXELS // 1_000_000} megapixels.") from None
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image Pillow can read: give a PNG, JPEG or WebP file.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path} could not be read ({exc}): the file is truncated or damaged.") from None
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale, 16-bit, palette, CMYK, alpha (composited on white) -> 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(image, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        image = Image.fromarray((a / top * 255).round().clip(0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGB", image.size, "white")
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale the shorter side to the model's size and centre-crop (no distortion)."""
    return ImageOps.fit(image, size, Image.BICUBIC)


@dataclass
class LatentReport:
    image: Image.Image  #: the input as fed to the encoder
    latents: torch.Tensor = field(repr=False)  #: [1, C, h, w], scaled by the VAE's scaling factor
    channels: list[Image.Image] = field(repr=False)  #: each channel normalised to 0..255
    channel_ranges: list[tuple[float, float]]
    reconstruction: Image.Image
    psnr: float  #: dB between input and round trip
    input_values: int
    latent_values: int
    scaling_factor: float
    #: what the numbers alone would hide (a centre crop, colour lost by a greyscale VAE), one phrase each
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.input_values / self.latent_values

    def sizes_text(self) -> str:
        c, h, w = self.latents.shape[1:]
        W, H = self.image.size
        return (f"3x{H}x{W} = {self.input_values:,} values -> {c}x{h}x{w} = {self.latent_values:,} values "
                f"({self.ratio:g}x smaller)")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def round_trip_notes(original: Image.Image, fitted: Image.Image, reconstruction: Image.Image,
                     model_name: str) -> list[str]:
    """What the numbers alone would hide: a centre crop of ``original`` to ``fitted``, and colour lost by a
    greyscale VAE (the shipped ``tiny`` model's) in ``reconstruction``."""
    out = []
    w, h = original.size
    fw, fh = fitted.size
    if abs(w / h - fw / fh) > 0.01:
        out.append(f"{w}x{h} centre-cropped to {fw}x{fh}")
    rgb = np.asarray(original.convert("RGB"), dtype=np.float32)
    colourful = float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean()) > 8
    back = np.asarray(reconstruction.convert("RGB"), dtype=np.float32)
    grey_back = float(np.abs(back - back.mean(axis=2, keepdims=True)).mean()) < 2
    if colourful and grey_back:
        out.append(f"{model_name}'s VAE is greyscale: colour is lost" if model_name == "tiny"
                   else "the round trip lost the colour")
    return out


@torch.no_grad()
def round_trip(model, image: Image.Image, seed: int = 0) -> LatentReport:
    """Encode ``image`` (fitted to the model's size), show its latents, decode it back; ``notes`` say
    what the numbers would hide (``round_trip_notes``)."""
    original, image = image, fit(to_rgb(image), model.default_size)
    x = image_tensor(image)
    generator = torch.Generator("cpu").manual_seed(seed)
    latents = encode(model.vae, x, generator)

    check_result(latents, "the VAE's latents", model=model)
    recon = decode(model.vae, latents).cpu()
    check_result(recon, "the VAE's reconstruction", model=model)
    channels, ranges = [], []
    for ch in latents[0].float().cpu():
        lo, hi = float(ch.min()), float(ch.max())
        norm = (ch - lo) / (hi - lo) if hi > lo else torch.zeros_like(ch)
        channels.append(Image.fromarray((norm.numpy() * 255).round().astype(np.uint8), mode="L"))
        ranges.append((lo, hi))
    recon_np = recon[0].permute(1, 2, 0).numpy()
    reconstruction = Image.fromarray((recon_np * 255).round().astype(np.uint8))
    return LatentReport(
        image=image, latents=latents.float().cpu(), channels=channels, channel_ranges=ranges,
        reconstruction=reconstruction,
        psnr=psnr(x[0].permute(1, 2, 0).numpy(), recon_np),
        input_values=x.numel(), latent_values=latents.numel(),
        scaling_factor=float(model.vae.config.scaling_factor),
        notes=round_trip_notes(original, image, reconstruction, model.name),
    )
