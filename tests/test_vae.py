"""The VAE pane's numbers come from the tensors; every kind of image file is read or refused clearly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from sd_explorer.core.errors import UserError
from sd_explorer.core.vae import LatentReport, load_image, psnr, round_trip


def test_round_trip_numbers(sd1):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 80, 3), dtype=np.uint8))
    report = round_trip(sd1, image)
    assert report.image.size == (64, 64)
    assert report.latents.shape == (1, 4, 8, 8)
    assert (report.input_values, report.latent_values, report.ratio) == (12288, 256, 48)
    assert len(report.channels) == 4 and all(c.size == (8, 8) for c in report.channels)
    for (lo, hi), channel in zip(report.channel_ranges, report.latents[0]):
        assert lo == pytest.approx(float(channel.min())) and hi == pytest.approx(float(channel.max()))
    assert report.reconstruction.size == (64, 64) and math.isfinite(report.psnr)
    assert report.sizes_text() == "3x64x64 = 12,288 values -> 4x8x8 = 256 values (48x smaller)"


def test_chapter_compression_for_a_512_image():
    """SD's numbers: 3x512x512 = 786,432 -> 4x64x64 = 16,384 values, 48x (text from the tensor sizes)."""
    import torch

    report = LatentReport(image=Image.new("RGB", (512, 512)), latents=torch.zeros(1, 4, 64, 64), channels=[],
                          channel_ranges=[], reconstruction=None, psnr=0.0, input_values=3 * 512 * 512,
                          latent_values=4 * 64 * 64, scaling_factor=0.18215)
    assert report.sizes_text() == "3x512x512 = 786,432 values -> 4x64x64 = 16,384 values (48x smaller)"


def test_psnr():
    a = np.zeros((4, 4, 3))
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.1) == pytest.approx(20.0)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1"])
def test_image_modes_become_rgb(tmp_path, mode):
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    if mode == "I;16":
        Image.fromarray(np.full((5, 5), 40000, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, (5, 5)).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (5, 5)


def test_one_pixel_image_is_fitted(sd1, tmp_path):
    Image.new("RGB", (1, 1), "red").save(tmp_path / "px.png")
    assert round_trip(sd1, load_image(tmp_path / "px.png")).image.size == (64, 64)


def test_bad_files(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(UserError, match="not an image"):
        load_image(tmp_path / "text.png")
    Image.new("RGB", (64, 64), "red").save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:60])
    with pytest.raises(UserError, match="truncated|not an image"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(UserError, match="does not exist"):
        load_image(tmp_path / "missing.png")


def test_giant_image_refused_before_decoding(tmp_path):
    """A 20000x20000 PNG header is refused from its size alone."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(UserError, match="too large"):
        load_image(tmp_path / "huge.png")


def test_round_trip_notes_name_a_centre_crop_and_lost_colour():
    """What the numbers hide, said by core (``LatentReport.notes``): the latents pane shows them as they are."""
    from sd_explorer.core.vae import round_trip_notes

    red, grey = Image.new("RGB", (100, 50), (200, 20, 20)), Image.new("RGB", (64, 64), (80, 80, 80))
    assert round_trip_notes(red, Image.new("RGB", (64, 64)), grey, "tiny") == [
        "100x50 centre-cropped to 64x64", "tiny's VAE is greyscale: colour is lost"]
    assert round_trip_notes(red, Image.new("RGB", (64, 64)), grey, "sd15")[1] == "the round trip lost the colour"
    square = Image.new("RGB", (64, 64), (200, 20, 20))
    assert round_trip_notes(square, square, square, "tiny") == []  # no crop, colour kept


def test_round_trip_report_carries_its_notes(sd1):
    report = round_trip(sd1, Image.new("RGB", (100, 50), (90, 90, 90)))
    assert report.notes == ["100x50 centre-cropped to 64x64"]
