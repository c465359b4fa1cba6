"""A memory budget for decodes: admitted by the bytes they will hold, not by a thread count.

:func:`estimate` reads only an image's header (``Image.open`` without ``load``) and
predicts the peak memory :func:`monitor.imaging.decode.decode_bytes` will use for it;
:class:`MemoryBudget` lets decodes run while the sum of their claims fits, so a few
huge images queue behind each other while small ones run side by side, and hands the
freed heap back to the system after a large one (:data:`TRIM_BYTES`).

The bytes per pixel below are measured, not derived: peak RSS of a fresh process
(``VmHWM`` after the decode minus ``psutil`` RSS just before it, with the bytes read and
Pillow's plugins loaded) decoding one 8900×8900 image (79.2 Mpx, just under
``decode.max_pixels``) made from scikit-image's ``astronaut`` resized, saved in each mode
and format below, at ``work_side`` 1024 (full decode) and 512 (hash-only decode); Pillow
13.0, glibc, Linux x86-64. ``decode_peak`` in ``tests/test_limits.py`` repeats it and
those tests check the estimate covers the measured peak. Over 38 files (these plus
100², 2000² and 4000² ones) × both sides the estimate was never below the peak: 1.01-1.33
× for peaks over 300 MB, up to 3.5 × for small ones, where :data:`FIXED_BYTES` weighs
most. Measured peaks, MB (bytes per pixel)::

    mode (format)           side 1024      side 512
    RGB (PNG, TIFF)          350 (4.42)     320 (4.05)
    RGB, EXIF-rotated PNG    667 (8.42)     637 (8.05)
    RGBA (PNG, TIFF)         667 (8.42)     713 (9.01)
    L (PNG)                   88 (1.11)     400 (5.05)
    1 (TIFF G4)               81 (1.02)     400 (5.05)
    P (PNG, GIF)             430 (5.42)     400 (5.04)
    P + transparency (PNG)   476 (6.00)     476 (6.01)
    LA (PNG)                 951 (12.0)     713 (9.01)
    CMYK (TIFF)              351 (4.42)     637 (8.05)
    I;16 (PNG)              2060 (26.0)    2060 (26.0)
    I, F (TIFF)             2223 (28.1)    2223 (28.1)
    any (WEBP)              1301 (16.4)    1348 (17.0)
    RGB (AVIF)               727 (9.18)     727 (9.18)
    JPEG baseline, 1/8 draft  15            9
    JPEG progressive 4:2:0   244 (3.08)     244 (3.08)
    JPEG progressive 4:4:4   481 (6.08)     481 (6.08)
    JPEG progressive L       160 (2.02)     160 (2.02)

Pillow keeps 1 byte per pixel for ``1``/``L``/``P``, 2 for ``I;16`` and 4 for the rest,
so the table is "bytes per pixel × copies": RGB needs 1.1 copies, RGBA 2.1-2.3, 16-bit
and float modes 13 and 7 (``to_rgb`` works in float64). An EXIF rotation adds one copy of
the source (``exif_transpose``). JPEGs decode at the draft scale (``Image.draft``), but a
progressive JPEG first holds every DCT coefficient at full size (2 bytes per sample).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import itertools
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

from PIL import Image

from monitor.imaging.decode import RASTER_FORMATS, REFERENCE_SIDE, DecodeLimits

MIB = 1024 * 1024

PEAK_BYTES_PER_PIXEL: dict[str, tuple[float, float]] = {
    "1": (1.1, 5.1), "L": (1.2, 5.1), "P": (6.1, 6.1), "LA": (12.1, 9.1),
    "RGB": (4.5, 4.1), "YCbCr": (4.5, 4.1), "RGBA": (8.5, 9.1), "CMYK": (4.5, 8.1),
    "I;16": (26.1, 26.1), "I": (28.1, 28.1), "F": (28.1, 28.1),
}
"""Peak bytes per source pixel of a decode, ``(work_side >= 1024, work_side < 1024)``, by
Pillow mode: the measurements of the module docstring rounded up. ``I;16B``/``L``/``N``
count as ``I;16``."""

FORMAT_PEAK_BYTES_PER_PIXEL: dict[str, float] = {"WEBP": 17.1, "AVIF": 9.2}
"""Formats whose decoder, not the mode, sets the peak (bytes per pixel, measured above)."""

DEFAULT_PEAK_BYTES_PER_PIXEL = 28.1
"""Modes not measured (``PA``, ``LAB``, ``RGBX``, ...): the largest measured value."""

WORKING_SIDES = 3
"""The reduced copies a decode makes hold at most ``(3 × work_side)²`` RGB pixels (the
box-reduced intermediate of ``thumbnail(reducing_gap=2)`` is below 3 × work_side), at 4
bytes each; counted on top of the table, which small images need (a 2000×2000 RGB PNG
peaks at 28.5 MB, 7.1 bytes per pixel)."""

FIXED_BYTES = 8 * MIB
"""Codec buffers and the working copy of any decode: a baseline 8900×8900 JPEG decoded
at 1/8 scale (1113×1113) peaked at 14.5 MB, 4 MB over its pixels (measured as above)."""

JPEG_COEFFICIENT_BYTES = 2
"""Bytes per sample of the DCT coefficients a progressive JPEG holds at full size
(libjpeg ``JCOEF`` is int16; measured 3.08 bytes per pixel for 4:2:0, 6.08 for 4:4:4)."""

TRIM_BYTES = 64 * MIB
"""Claims of at least this many bytes hand freed heap back to the system when released
(:func:`release_freed_memory`). Without it the pixels a decode freed stay in its thread's
malloc arena: 4 ``/v1/search`` of an 8900×8900 PNG, decoded one at a time on 4 threads,
left RSS 306 MB higher after each (peak +932 MiB); trimmed, the peak stayed at +321 MiB,
for 23 ms of ``malloc_trim`` after each 1 s decode (measured as in tests/test_limits.py)."""

_PNG_LATE_ORIENTATION = (b"eXIf", b"XML:com.adobe.xmp", b"Raw profile type exif")
"""PNG chunks (or text keywords) that may carry an orientation after the image data,
where ``Image.open`` has not read them."""


def estimate(data: bytes, limits: DecodeLimits = DecodeLimits()) -> int:
    """Bytes that decoding ``data`` under ``limits`` will hold at its peak, predicted from
    the header only (``Image.open``, no pixel is decoded).

    width × height (of the JPEG draft for JPEGs) × :data:`PEAK_BYTES_PER_PIXEL` of its
    mode (or :data:`FORMAT_PEAK_BYTES_PER_PIXEL`), plus one source copy when an EXIF
    orientation rotates it, the full-size DCT coefficients of a progressive JPEG, the
    reduced copies (:data:`WORKING_SIDES`) and :data:`FIXED_BYTES`.

    Never raises: bytes that do not open as an image, or that ``decode_bytes`` refuses
    before decoding (over ``max_bytes`` or ``max_pixels``), cost :data:`FIXED_BYTES`, since
    the decode fails without holding their pixels.
    """
    if not data or len(data) > limits.max_bytes:
        return FIXED_BYTES
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data), formats=RASTER_FORMATS)
            return _estimate_opened(im, data, limits)
    except Exception:  # noqa: BLE001 - the decode itself reports what is wrong
        return FIXED_BYTES


def _estimate_opened(im: Image.Image, data: bytes, limits: DecodeLimits) -> int:
    width, height = im.size
    if width * height > limits.max_pixels:
        return FIXED_BYTES
    side = limits.work_side
    mode, fmt = im.mode, im.format or ""
    coefficients = 0
    if fmt == "JPEG":
        if im.info.get("progressive") or im.info.get("progression"):
            coefficients = _jpeg_samples(im) * JPEG_COEFFICIENT_BYTES
        if mode in ("RGB", "L", "CMYK", "YCbCr"):
            im.draft(mode, (side, side))  # as decode_bytes does: the size shrinks, no pixels
    pixels = im.size[0] * im.size[1]
    key = "I;16" if mode.startswith("I;16") else mode
    full, hash_only = PEAK_BYTES_PER_PIXEL.get(key, (DEFAULT_PEAK_BYTES_PER_PIXEL,) * 2)
    per_pixel = FORMAT_PEAK_BYTES_PER_PIXEL.get(fmt, full if side >= REFERENCE_SIDE else hash_only)
    if _rotates(im, data):
        per_pixel += 1 if mode in ("1", "L", "P") else 2 if key == "I;16" else 4
    working = 4 * min(pixels, (WORKING_SIDES * side) ** 2)
    return int(pixels * per_pixel) + coefficients + working + FIXED_BYTES


def _jpeg_samples(im: Image.Image) -> int:
    """Samples of every component at full size, from the SOF sampling factors."""
    layers = getattr(im, "layer", None) or [("", 1, 1, 0)] * len(im.getbands())
    h_max = max(h for _, h, _, _ in layers)
    v_max = max(v for _, _, v, _ in layers)
    w, h = im.size
    return sum(-(-w * hc // h_max) * -(-h * vc // v_max) for _, hc, vc, _ in layers)


def _rotates(im: Image.Image, data: bytes) -> bool:
    """True when an EXIF or XMP orientation will make ``decode_bytes`` transpose a copy.

    ``Image.Image.getexif`` reads what ``open`` found (PNG's own override would decode the
    image); a PNG may carry the orientation after its pixels, so any such chunk counts.
    """
    if Image.Image.getexif(im).get(0x0112, 1) in (2, 3, 4, 5, 6, 7, 8):
        return True
    return im.format == "PNG" and any(tag in data for tag in _PNG_LATE_ORIENTATION)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)


def release_freed_memory() -> None:
    """Return heap memory this process has freed to the system: glibc ``malloc_trim(0)``
    (every arena, pages inside the heap too); a no-op where the C library has none."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class MemoryBudget:
    """Bytes that work running at once may claim, shared by threads.

    ``with budget.claim(n):`` waits until ``n`` fits next to what is claimed already, in
    arrival order (a large claim is not starved by a stream of small ones). A claim
    larger than the whole budget runs alone: it waits until nothing is claimed, and
    nothing else starts until it is released.

    A claim of at least ``trim_bytes`` calls :func:`release_freed_memory` when it ends,
    before the next claim is admitted, so what it freed does not linger in its thread's
    malloc arena (RSS would otherwise grow with the thread count, not the budget).

    Attributes:
        total: the budget in bytes.
        trim_bytes: claims at least this large trim the heap when released (bytes).
        peak: the most bytes claimed at once so far.
    """

    def __init__(self, total_bytes: int, trim_bytes: int = TRIM_BYTES) -> None:
        """``total_bytes``: the budget in bytes (at least 1); ``trim_bytes``: see above.

        Raises:
            ValueError: ``total_bytes`` below 1.
        """
        if total_bytes < 1:
            raise ValueError(f"a memory budget needs at least 1 byte, not {total_bytes}")
        self.total, self.trim_bytes, self.peak = total_bytes, trim_bytes, 0
        self._used = 0
        self._cond = threading.Condition()
        self._line: deque[int] = deque()
        self._tickets = itertools.count()

    @property
    def used(self) -> int:
        """Bytes claimed now."""
        return self._used

    @property
    def waiting(self) -> int:
        """Claims waiting for room."""
        return len(self._line)

    @contextmanager
    def claim(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the ``with`` block, waiting (blocking the
        thread, in arrival order) until they fit, or until nothing else is held when
        ``nbytes`` exceeds the whole budget.

        Raises:
            ValueError: ``nbytes`` is negative.
        """
        if nbytes < 0:
            raise ValueError(f"cannot claim {nbytes} bytes")
        with self._cond:
            ticket = next(self._tickets)
            self._line.append(ticket)
            try:
                while self._line[0] != ticket or not self._fits(nbytes):
                    self._cond.wait()
            finally:
                self._line.remove(ticket)
                self._cond.notify_all()  # the next in line may fit too, or may be first now
            self._used += nbytes
            self.peak = max(self.peak, self._used)
        try:
            yield
        finally:
            if nbytes >= self.trim_bytes:
                release_freed_memory()
            with self._cond:
                self._used -= nbytes
                self._cond.notify_all()

    def _fits(self, nbytes: int) -> bool:
        return self._used == 0 or self._used + nbytes <= self.total
