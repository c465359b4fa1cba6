"""Safe decoding: the one door every image (gallery or candidate) goes through.

Bytes → :class:`DecodedImage`, an 8-bit RGB working copy whose longest side is at
most ``work_side`` pixels, plus what the stages and the evidence need to know
of the original (size, format, frame count, sha256). Each refusal is a typed
:class:`~monitor.errors.DecodeError` whose message says what was wrong.

Normalisation: EXIF orientation applied (``ImageOps.exif_transpose``); alpha
and palette transparency composited onto white; CMYK, YCbCr, LAB, 1-bit,
greyscale and 16-bit/32-bit/float modes brought to 8-bit RGB by scaling, not
clipping; the first frame of an animation. JPEGs are decoded at reduced scale
with ``Image.draft`` (libjpeg DCT scaling) when the working copy is smaller.
A working copy smaller than :data:`REFERENCE_SIDE` (hash-only decoding) makes its
reduced copies from the decoded image when that is at most 1024 px, kept in mode
``L`` for greyscale sources (the same pixels as RGB's three equal channels, at a
quarter of the resizing work).
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from monitor.errors import (
    CorruptImage,
    EmptyInput,
    ImageTooLarge,
    InputTooLarge,
    UnsupportedFormat,
)
from monitor.imaging.colour import grey_or_rgb, rgb
from monitor.imaging.colour import onto_white as _onto_white  # noqa: F401 (tests)
from monitor.imaging.colour import to_rgb as _to_rgb
from monitor.imaging.sniff import document_kind
from monitor.imaging.trim import TRIM_SIDE, content_box

T = TypeVar("T")

RASTER_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP", "TIFF", "ICO", "PPM", "TGA")
"""Formats Pillow may open; anything else (EPS, PDF, PSD, ...) is refused."""


@dataclass(frozen=True)
class DecodeLimits:
    """Limits in bytes and pixels, and the working-copy size in pixels."""

    max_bytes: int = 50_000_000
    max_pixels: int = 80_000_000
    work_side: int = 1024


REFERENCE_SIDE = 1024
"""The default ``work_side`` (pixels). With a smaller one (hash-only decoding,
``monitor.matching.engine.HASH_ONLY_SIDE``) a decoded image of at most this side is kept whole
as the *reference*: reduced copies come from it, the very ones a full decode makes,
and the working copy is only made when asked for."""


def fit_size(size: tuple[int, int], side: int) -> tuple[int, int] | None:
    """``(w, h)`` that ``Image.thumbnail((side, side))`` gives an image of ``size``
    (aspect kept, Pillow's rounding), or None when it already fits."""
    w, h = size
    if side >= w and side >= h:
        return None
    a = w / h
    if a <= 1:
        n = min(math.floor(side * a), math.ceil(side * a), key=lambda n: abs(a - n / side))
        return max(n, 1), side
    n = min(math.floor(side / a), math.ceil(side / a), key=lambda n: abs(a - side / n) if n else 0)
    return side, max(n, 1)


def reduced(im: Image.Image, side: int) -> Image.Image:
    """``im`` reduced to a longest side ``<= side`` (``im`` itself when it fits): the
    pixels of ``im.copy().thumbnail((side, side), BILINEAR, reducing_gap=2.0)`` (box
    ``reduce`` while at least 2× too large, then bilinear), without the copy."""
    size = fit_size(im.size, side)
    return im if size is None else im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded input.

    Attributes:
        image: RGB ``PIL.Image``, longest side ``<= work_side`` pixels (the working
            copy; with a ``reference``, made from it on first access).
        width, height: size of the original image in pixels (after EXIF rotation).
        format: Pillow format name of the source (``"JPEG"``, ``"PNG"``, ...).
        frames: number of frames in the source (1 for stills).
        sha256: hex digest of the source bytes.
        size_bytes: length of the source bytes.
        reference: the decoded image when larger than ``work_side`` and at most
            :data:`REFERENCE_SIDE` pixels (RGB; ``L`` for greyscale sources), else None;
            the *base* that :meth:`scaled`, :meth:`content_box` and :meth:`trimmed`
            work from (else ``image``); what those return is RGB either way.
        work_side: longest side of the working copy made from ``reference``.
    """

    image: Image.Image
    width: int
    height: int
    format: str
    frames: int
    sha256: str
    size_bytes: int
    _cache: dict = field(default_factory=dict, repr=False)
    reference: Image.Image | None = field(default=None, repr=False)
    work_side: int = REFERENCE_SIDE

    def __post_init__(self) -> None:
        if self.image is None:  # made from the reference on first access
            object.__delattr__(self, "image")

    def __getattr__(self, name: str) -> Image.Image:  # only for a missing ``image``
        ref = self.__dict__.get("reference")
        if name != "image" or ref is None:
            raise AttributeError(name)
        im = rgb(reduced(ref, self.work_side))
        object.__setattr__(self, "image", im)
        return im

    @property
    def base(self) -> Image.Image:
        """The copy the reduced copies are made from: ``reference``, else ``image``."""
        return self.image if self.reference is None else self.reference

    def scaled(self, side: int) -> Image.Image:
        """The base copy reduced so its longest side is ``<= side`` pixels (cached)."""
        if side not in self._cache:
            self._cache[side] = rgb(reduced(self.base, side))
        return self._cache[side]

    def content_box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the content in base-copy pixels: uniform borders
        (pads, blank canvas around clip art) trimmed, as ImageMagick's ``-trim`` does.
        Found on a copy of at most :data:`TRIM_SIDE` pixels (fast, and the same box
        whatever the working size), then scaled to the base copy.

        Up to :data:`TRIM_PASSES` passes, so a coloured pad around a white canvas goes
        too. The whole image when trimming would leave less than :data:`TRIM_MIN` of
        either side. Cached.
        """
        if "box" not in self._cache:
            base, small = self.base, self.scaled(TRIM_SIDE)
            x0, y0, x1, y1 = content_box(np.asarray(small))
            fx, fy = base.width / small.width, base.height / small.height
            self._cache["box"] = (int(x0 * fx), int(y0 * fy), min(base.width, round(x1 * fx)),
                                  min(base.height, round(y1 * fy)))
        return self._cache["box"]

    def trimmed(self, side: int) -> tuple[Image.Image, tuple[float, float], float]:
        """The content (see :meth:`content_box`) reduced to a longest side ``<= side``.

        Returns ``(image, (ox, oy), scale)``: a point ``(x, y)`` of the returned
        image sits at ``(ox + x * scale, oy + y * scale)`` in *original* pixels.
        When nothing is trimmed, the image is :meth:`scaled` ``(side)`` itself.
        """
        key = ("trim", side)
        if key not in self._cache:
            base = self.base
            x0, y0, x1, y1 = self.content_box()
            im = self.scaled(side) if (x0, y0, x1, y1) == (0, 0, *base.size) else \
                rgb(reduced(base.crop((x0, y0, x1, y1)), side))
            back = self.width / base.width  # base → original pixels
            scale = back * (x1 - x0) / im.width
            self._cache[key] = (im, (x0 * back, y0 * back), scale)
        return self._cache[key]

    def gray(self, side: int) -> np.ndarray:
        """``(H, W) uint8`` greyscale of :meth:`scaled` (cached)."""
        return self.derived(("gray", side), lambda: np.asarray(self.scaled(side).convert("L")))

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, computed once per image and kept under ``key`` (views the stages
        derive from this image, such as region proposals, shared between stages)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def _shrink(im: Image.Image, side: int) -> Image.Image:
    """RGB reduced to a longest side of ``side`` pixels.

    Full decode (``side >= REFERENCE_SIDE``): alpha images are resized premultiplied
    (``RGBa``, no dark fringes from transparent pixels), then composited onto white; box
    ``reduce`` while at least 2× too large, then bilinear. Smaller (hash-only) copies
    composite onto white first (also fringe-free, and one pass instead of premultiplying
    and back) and box-reduce as far as the size allows (``reducing_gap=1``): faster,
    hashes as close to the full decode's (bench/speed). Palette and 16-bit: _to_rgb first.
    """
    if side < REFERENCE_SIDE:
        im = _to_rgb(im)
        im.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=1.0)
        return im
    if im.mode in ("P", "PA", "I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = _to_rgb(im)
    elif im.mode in ("RGBA", "LA"):
        im = (im if im.mode == "RGBA" else im.convert("RGBA")).convert("RGBa")
    im.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return _to_rgb(im)


def decode_bytes(data: bytes, limits: DecodeLimits = DecodeLimits(),
                 sha256: str | None = None, sniffed: bool = False) -> DecodedImage:
    """Decode ``data`` into a :class:`DecodedImage`; ``sha256`` is its hex digest when the
    caller computed it already (else computed here); ``sniffed`` says the caller matched
    its magic bytes to a raster format already (:mod:`monitor.imaging.sniff`), so text
    documents need not be looked for again.

    Raises:
        EmptyInput: zero bytes.
        InputTooLarge: more than ``limits.max_bytes`` bytes.
        UnsupportedFormat: SVG, HTML, PDF, text or any non-raster format.
        ImageTooLarge: width × height above ``limits.max_pixels``.
        CorruptImage: truncated or malformed image data.
    """
    if not data:
        raise EmptyInput("empty input: 0 bytes")
    if len(data) > limits.max_bytes:
        raise InputTooLarge(f"input is {len(data)} bytes; the limit is {limits.max_bytes}")
    kind = None if sniffed else document_kind(data)
    if kind:
        raise UnsupportedFormat(f"not a raster image: looks like {kind}")
    try:
        with warnings.catch_warnings():
            # Pillow's warning sits at its own cap (89.5 Mpx); a higher limit (the trusted
            # gallery's) is enforced below instead, up to Pillow's hard error at twice that
            warnings.simplefilter("error" if limits.max_pixels <= Image.MAX_IMAGE_PIXELS
                                  else "ignore", Image.DecompressionBombWarning)
            # Pillow advises the RGBA conversion that _to_rgb performs anyway
            warnings.filterwarnings("ignore", message="Palette images with Transparency")
            im = Image.open(io.BytesIO(data), formats=RASTER_FORMATS)
            return _decode_opened(im, data, limits, sha256)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"decompression bomb refused: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedFormat("not a supported raster image (unknown format)") from exc
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as exc:
        raise CorruptImage(f"corrupt or truncated image: {exc}") from exc


def _decode_opened(im: Image.Image, data: bytes, limits: DecodeLimits,
                   sha256: str | None) -> DecodedImage:
    width, height = im.size
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}"
        )
    fmt, frames = im.format or "?", getattr(im, "n_frames", 1)
    if fmt == "JPEG" and im.mode in ("RGB", "L", "CMYK", "YCbCr"):
        im.draft(im.mode, (limits.work_side, limits.work_side))
    im.seek(0)
    im.load()
    orientation = im.getexif().get(0x0112, 1)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    if orientation in (2, 3, 4, 5, 6, 7, 8):  # otherwise exif_transpose only copies
        im = ImageOps.exif_transpose(im)
    side, reference = limits.work_side, None
    if side < max(im.size) <= REFERENCE_SIDE:
        reference, im = grey_or_rgb(im), None
    elif max(im.size) > side:
        im = _shrink(im, side)
    else:
        im = _to_rgb(im)
    return DecodedImage(
        image=im, width=width, height=height, format=fmt, frames=frames,
        sha256=sha256 or hashlib.sha256(data).hexdigest(), size_bytes=len(data),
        reference=reference, work_side=side,
    )


def decode_file(path: Path, limits: DecodeLimits = DecodeLimits()) -> DecodedImage:
    """Read and decode a file, checking its size before reading it.

    Raises:
        InputTooLarge, and everything :func:`decode_bytes` raises.
        OSError: the file cannot be read (missing, permission).
    """
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise InputTooLarge(f"{path}: {size} bytes; the limit is {limits.max_bytes}")
    return decode_bytes(path.read_bytes(), limits)
