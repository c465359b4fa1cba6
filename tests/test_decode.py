"""Safe decoding: every kind of bad input is refused with its own typed error."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from monitor.decode import DecodeLimits, decode_bytes
from monitor.errors import (
    CorruptImage,
    EmptyInput,
    ImageTooLarge,
    InputTooLarge,
    UnsupportedFormat,
)
from tests.conftest import encode


def _png_with_size(width: int, height: int) -> bytes:
    """A syntactically valid PNG header claiming ``width``×``height`` with a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_empty_input() -> None:
    with pytest.raises(EmptyInput, match="0 bytes"):
        decode_bytes(b"")


def test_byte_limit(photos) -> None:
    data = encode(photos["astronaut"])
    with pytest.raises(InputTooLarge, match="limit"):
        decode_bytes(data, DecodeLimits(max_bytes=len(data) - 1))


def test_decompression_bomb_30000px() -> None:
    with pytest.raises(ImageTooLarge, match="900000000 pixels"):
        decode_bytes(_png_with_size(30000, 30000))


@pytest.mark.parametrize("payload, kind", [
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    (b"<svg width='10' height='10'></svg>", "SVG"),
    (b"<!DOCTYPE html><html><body>not an image</body></html>", "HTML"),
    (b"%PDF-1.7 ...", "PDF"),
    (b"just some text, no image here", "unknown"),
])
def test_non_images_refused(payload: bytes, kind: str) -> None:
    with pytest.raises(UnsupportedFormat, match=kind if kind != "unknown" else "not a"):
        decode_bytes(payload)


def test_truncated_jpeg(photos) -> None:
    data = encode(photos["coffee"])
    with pytest.raises(CorruptImage, match="truncated|corrupt"):
        decode_bytes(data[: len(data) // 2])


def test_jpeg_header_then_garbage() -> None:
    with pytest.raises((CorruptImage, UnsupportedFormat)):
        decode_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 10)


def test_large_jpeg_uses_reduced_decode(photos) -> None:
    big = photos["hubble_deep_field"].resize((3000, 2616))
    d = decode_bytes(encode(big, quality=90), DecodeLimits(work_side=512))
    assert (d.width, d.height) == (3000, 2616)
    assert max(d.image.size) == 512 and d.image.mode == "RGB"


def test_exif_orientation_applied(photos) -> None:
    im = photos["rocket"]  # 640x427, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    d = decode_bytes(encode(im, exif=exif.tobytes()))
    assert (d.width, d.height) == (427, 640)
    assert d.image.size[0] < d.image.size[1]


def test_cmyk_becomes_rgb(photos) -> None:
    d = decode_bytes(encode(photos["coffee"].convert("CMYK")))
    assert d.image.mode == "RGB"
    ref = np.asarray(photos["coffee"], np.float32)
    assert np.abs(np.asarray(d.image, np.float32) - ref).mean() < 20


def test_16bit_is_scaled_not_clipped() -> None:
    ramp = (np.linspace(0, 65535, 256 * 64).reshape(64, 256)).astype(np.uint16)
    d = decode_bytes(encode(Image.fromarray(ramp), "PNG"))
    out = np.asarray(d.image)[..., 0]
    assert out.min() <= 2 and out.max() >= 253  # full range kept, not saturated at 255
    assert np.all(np.diff(out[0].astype(int)) >= 0)


def test_palette_transparency_onto_white() -> None:
    im = Image.new("P", (40, 40), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (10, 10, 30, 30))
    d = decode_bytes(encode(im, "PNG", transparency=0))
    px = np.asarray(d.image)
    assert tuple(px[0, 0]) == (255, 255, 255) and tuple(px[20, 20]) == (255, 0, 0)


def test_alpha_onto_white(photos) -> None:
    rgba = photos["astronaut"].convert("RGBA")
    rgba.putalpha(0)
    d = decode_bytes(encode(rgba, "PNG"))
    assert np.asarray(d.image).min() == 255


def test_animated_gif_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buf = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    d = decode_bytes(buf)
    assert d.frames == 3
    r, g, b = np.asarray(d.image)[16, 16]
    assert r > 200 and g < 50 and b < 50


def test_greyscale_and_sha(photos) -> None:
    data = encode(photos["astronaut"].convert("L"), "PNG")
    d = decode_bytes(data)
    assert d.image.mode == "RGB" and d.format == "PNG" and d.size_bytes == len(data)
    import hashlib

    assert d.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("mode, fill", [("LA", (120, 255)), ("RGBA", (200, 30, 30, 255))])
def test_large_alpha_shrunk_then_flattened_without_fringes(mode: str, fill: tuple) -> None:
    im = Image.new(mode, (3000, 2000), (0,) * len(fill))
    im.paste(fill, (500, 500, 2500, 1500))
    d = decode_bytes(encode(im, "PNG"), DecodeLimits(work_side=512))
    px = np.asarray(d.image).astype(int)
    assert d.image.size == (512, 341) and tuple(px[0, 0]) == (255, 255, 255)
    inside = px[170, 256]
    assert np.abs(inside - np.array(fill[:-1] * (3 if mode == "LA" else 1))).max() <= 2
    edge = px[85, 86:170]  # the content's top edge: no dark halo from transparent black
    assert edge.min() >= min(fill[:-1]) - 2
    x0, y0, x1, y1 = d.content_box()
    assert abs(x0 - 85) <= 3 and abs(y0 - 85) <= 3 and abs(x1 - 427) <= 3 and abs(y1 - 256) <= 3
