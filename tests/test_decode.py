"""Safe decoding: every kind of bad input is refused with its own typed error."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from monitor.errors import (
    CorruptImage,
    EmptyInput,
    ImageTooLarge,
    InputTooLarge,
    UnsupportedFormat,
)
from monitor.imaging.decode import DecodeLimits, decode_bytes
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


def test_reduced_is_thumbnail_without_the_copy(photos) -> None:
    from monitor.imaging.decode import fit_size, reduced

    im = photos["rocket"]
    for w in range(1, 1400, 37):
        for h in (1, 3, 127, 128, 129, 300, 511, 1023):
            ref = Image.new("L", (w, h))
            ref.thumbnail((128, 128))
            assert (fit_size((w, h), 128) or (w, h)) == ref.size, (w, h)
    for size in ((640, 427), (300, 1000), (129, 128), (1200, 80)):
        src = im.resize(size)
        for side in (64, 128, 256, 512):
            ref = src.copy()
            ref.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
            assert np.array_equal(np.asarray(reduced(src, side)), np.asarray(ref)), (size, side)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_onto_white_equals_alpha_composite(mode: str) -> None:
    """Every (value, alpha) pair gives Image.alpha_composite's 8-bit result."""
    from monitor.imaging.decode import _onto_white

    a, v = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    bands = [v, (v * 7) % 256, 255 - v, a] if mode == "RGBA" else [v, a]
    im = Image.fromarray(np.stack(bands, -1).astype(np.uint8), mode)
    ref = Image.alpha_composite(Image.new("RGBA", im.size, (255,) * 4), im.convert("RGBA"))
    assert np.array_equal(np.asarray(_onto_white(im)), np.asarray(ref.convert("RGB")))


@pytest.mark.parametrize("transparency", ["index", "alphas"])
def test_palette_transparency_equals_per_pixel_composite(transparency: str) -> None:
    from monitor.imaging.decode import _to_rgb

    rng = np.random.default_rng(2)
    im = Image.fromarray(rng.integers(0, 256, (37, 53)).astype(np.uint8), "P")
    im.putpalette(rng.integers(0, 256, 768).astype(np.uint8).tobytes())
    im.info["transparency"] = (7 if transparency == "index" else
                               bytes(rng.integers(0, 256, 256).astype(np.uint8)))
    rgba = im.convert("RGBA")
    ref = Image.alpha_composite(Image.new("RGBA", im.size, (255,) * 4), rgba).convert("RGB")
    assert np.array_equal(np.asarray(_to_rgb(im)), np.asarray(ref))
    assert (np.asarray(rgba)[..., 3] < 255).any()


def _content_box_reference(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The trim box as first written (int16 differences to the frame median)."""
    from monitor.imaging.trim import TRIM_EDGE, TRIM_MIN, TRIM_PASSES, TRIM_TOLERANCE

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = 0, 0, w, h
    for _ in range(TRIM_PASSES):
        e = TRIM_EDGE if min(x1 - x0, y1 - y0) > 8 * TRIM_EDGE else 0
        view = rgb[y0 + e:y1 - e, x0 + e:x1 - e].astype(np.int16)
        frame = np.concatenate([view[0], view[-1], view[:, 0], view[:, -1]])
        diff = (np.abs(view - np.median(frame, axis=0)).max(axis=2) > TRIM_TOLERANCE)
        rows = np.flatnonzero(diff.mean(axis=1) > 0.005)
        cols = np.flatnonzero(diff.mean(axis=0) > 0.005)
        if not len(rows) or not len(cols):
            break
        nx0, ny0 = x0 + e + int(cols[0]), y0 + e + int(rows[0])
        nx1, ny1 = x0 + e + int(cols[-1]) + 1, y0 + e + int(rows[-1]) + 1
        if (nx1 - nx0) < TRIM_MIN * w or (ny1 - ny0) < TRIM_MIN * h:
            break
        if (nx0, ny0, nx1, ny1) == (x0 + e, y0 + e, x1 - e, y1 - e):
            break
        x0, y0, x1, y1 = nx0, ny0, nx1, ny1
    return x0, y0, x1, y1


def test_content_box_matches_the_reference(photos, others) -> None:
    """Pads at and around the tolerance (24 levels, half-level medians), noise and
    real photos: the cv2.inRange version finds the reference box."""
    from monitor.imaging.trim import content_box

    rng = np.random.default_rng(3)
    cases = []
    for im in [*photos.values(), *others.values()]:
        arr = np.asarray(im.convert("RGB").resize((200, 150)))
        for pad, border in ((0, 0), (20, 255), (9, 128)):
            canvas = np.full((150 + 2 * pad, 200 + 3 * pad, 3), border, np.uint8)
            canvas[pad:pad + 150, pad:pad + 200] = arr
            cases.append(canvas)
    for level in (230, 231, 232, 255):
        canvas = np.full((120, 160, 3), 255, np.uint8)
        canvas[:60, :] = 254  # frame median between two levels
        canvas[40:80, 50:110] = level
        canvas[50:70, 60:100] = rng.integers(0, 256, (20, 40, 3))
        cases.append(canvas)
    found = set()
    for rgb in cases:
        box = content_box(rgb)
        assert box == _content_box_reference(rgb)
        found.add(box == (0, 0, rgb.shape[1], rgb.shape[0]))
    assert found == {True, False}


def test_hash_only_decode_keeps_a_reference_for_mid_sized_images(photos) -> None:
    """Between the hash-only working side and 1024 px, the reduced copies come from the
    decoded image itself: the same pixels as a full decode; the working copy is made
    (at most work_side) only when asked for."""
    import dataclasses

    src = photos["astronaut"].resize((900, 700))
    data = encode(src, "PNG")
    small, full = decode_bytes(data, DecodeLimits(work_side=512)), decode_bytes(data)
    assert small.reference is not None and full.reference is None
    assert "image" not in small.__dict__
    for side in (128, 256):
        assert np.array_equal(np.asarray(small.scaled(side)), np.asarray(full.scaled(side)))
    assert small.content_box() == full.content_box()
    assert np.array_equal(np.asarray(small.trimmed(128)[0]), np.asarray(full.trimmed(128)[0]))
    assert small.image.size == (512, 398) and small.image.mode == "RGB"
    copy = dataclasses.replace(small, _cache={})
    assert copy.image is small.image and copy.scaled(256).size == small.scaled(256).size
    big = decode_bytes(encode(src.resize((1800, 1400)), "PNG"), DecodeLimits(work_side=512))
    assert big.reference is None and big.image.size == (512, 398)


@pytest.mark.parametrize("mode", ["LA", "L"])
def test_grey_or_rgb_is_to_rgb_in_one_band(mode: str) -> None:
    """Every (value, alpha) pair: the L copy hash-only decoding keeps for greyscale
    sources has the pixels of the RGB copy (three equal bands) a full decode makes."""
    from monitor.imaging.colour import grey_or_rgb, rgb, to_rgb

    a, v = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    bands = [v, a] if mode == "LA" else [v]
    im = Image.fromarray(np.squeeze(np.stack(bands, -1)).astype(np.uint8), mode)
    grey = grey_or_rgb(im)
    assert grey.mode == "L"
    assert np.array_equal(np.asarray(rgb(grey)), np.asarray(to_rgb(im)))


@pytest.mark.parametrize("mode", ["LA", "L"])
def test_hash_only_greyscale_reference_gives_full_decode_copies(photos, mode: str) -> None:
    """A greyscale photo on a transparent (LA) or white (L) canvas: hash-only decoding
    keeps an L reference, and every copy it hands out is RGB with the full decode's pixels."""
    from monitor.matching.stages.hash import HashStage

    canvas = Image.new(mode, (900, 700), (0, 0) if mode == "LA" else 255)
    photo = photos["astronaut"].convert("L").resize((500, 420))
    canvas.paste(photo.convert(mode) if mode == "LA" else photo, (230, 140))
    data = encode(canvas, "PNG")
    small, full = decode_bytes(data, DecodeLimits(work_side=512)), decode_bytes(data)
    assert small.reference is not None and small.reference.mode == "L"
    for side in (128, 256):
        assert small.scaled(side).mode == "RGB"
        assert np.array_equal(np.asarray(small.scaled(side)), np.asarray(full.scaled(side)))
    assert small.content_box() == full.content_box() != (0, 0, 900, 700)
    trimmed = small.trimmed(128)[0]
    assert trimmed.mode == "RGB"
    assert np.array_equal(np.asarray(trimmed), np.asarray(full.trimmed(128)[0]))
    assert small.image.mode == "RGB" and small.image.size == (512, 398)
    assert np.array_equal(HashStage().compute(small), HashStage().compute(full))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
@pytest.mark.parametrize("side", [1024, 512])
def test_light_artwork_on_transparency_stays_visible(others, mode: str, side: int) -> None:
    """White drawn on transparency (the drawing lives in alpha, as in a white logo or
    MATE's Waves.png) would be blank on white: it is composited onto black instead."""
    shape = np.asarray(others["camera"].convert("L").resize((1200, 900)))  # 1200 px: shrunk
    rgba = np.dstack([np.full(shape.shape + (3,), 255, np.uint8), shape])
    im = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        im = im.convert("LA")
    elif mode == "P":  # palette with a transparent entry: binary alpha
        im = Image.fromarray(np.where(shape > 128, 1, 0).astype(np.uint8), "P")
        im.putpalette([0, 0, 0, 255, 255, 255])
        im.info["transparency"] = 0
    d = decode_bytes(encode(im, "PNG"), DecodeLimits(work_side=side))
    grey = np.asarray(d.scaled(256).convert("L"), np.float32)
    assert grey.std() > 20  # the drawing shows (on white it would be one flat colour)
    ref = np.asarray(others["camera"].convert("L").resize(grey.shape[::-1]), np.float32)
    if mode != "P":
        assert np.corrcoef(grey.ravel(), ref.ravel())[0, 1] > 0.9


def test_ordinary_transparency_still_goes_onto_white(photos) -> None:
    rgba = photos["coffee"].convert("RGBA").resize((400, 300))
    alpha = Image.new("L", rgba.size, 0)
    alpha.paste(255, (100, 50, 300, 250))
    rgba.putalpha(alpha)
    d = decode_bytes(encode(rgba, "PNG"))
    corner = np.asarray(d.image)[:20, :20]
    assert (corner == 255).all()  # the transparent margin is white, as before
