"""Heavy photo-editor filters: the ``heavy`` edit family of :mod:`bench.edits`.

The filters follow the classic photo-editor filter menus (GIMP's Filters > Edge-Detect,
Artistic, Distorts and Map, Photoshop's Stylize, Pixelate and Distort): edge detection,
emboss, invert, posterise, pixelate, oil paint, cubism, kaleidoscope, polar coordinates,
spherize and waves. Each leaves the picture recognisable but replaces its gradients,
so descriptors of local texture no longer match. Only OpenCV, Pillow and numpy are used
(``cv2.xphoto`` is not in opencv-python-headless).

:func:`heavy` draws one operation, then its parameters, from the ``random.Random`` it is
given, so the edit is a pure function of the image and the seed. Operations in
:data:`CAPPED` first shrink the image to at most :data:`MAX_SIDE` pixels on the long side
(and return it at that size) so one edit stays well under 0.3 s on a 2000-px photo.
"""

from __future__ import annotations

import math
import random

import cv2
import numpy as np
from PIL import Image

MAX_SIDE = 1024
"""Long side, in pixels, the operations in :data:`CAPPED` work (and answer) at."""


def _grey(a: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _channels(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """float32 planes the edge filters run on: grey (H×W) or, one time in three, RGB."""
    return a.astype(np.float32) if rng.random() < 1 / 3 else _grey(a)


def _edges_out(mag: np.ndarray, rng: random.Random) -> np.ndarray:
    """Edge strength scaled so its 99th percentile maps to 255 × gain 0.8-1.5, then
    inverted (dark lines on white) with probability 0.4; grey planes become RGB."""
    scale = float(np.percentile(mag, 99)) + 1e-6
    out = np.clip(mag * (255 * rng.uniform(0.8, 1.5) / scale), 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        out = 255 - out
    return out if out.ndim == 3 else cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def _kernel_edges(a: np.ndarray, rng: random.Random, kx: np.ndarray) -> np.ndarray:
    x = _channels(a, rng)
    gx = cv2.filter2D(x, cv2.CV_32F, kx)
    gy = cv2.filter2D(x, cv2.CV_32F, np.ascontiguousarray(np.rot90(kx)))
    return _edges_out(cv2.magnitude(gx, gy), rng)


def _sobel(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Sobel gradient magnitude, kernel 3 or 5, grey or per channel."""
    x, k = _channels(a, rng), rng.choice((3, 5))
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=k)
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=k)
    return _edges_out(cv2.magnitude(gx, gy), rng)


def _prewitt(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Prewitt gradient magnitude (3×3), grey or per channel."""
    return _kernel_edges(a, rng, np.array([[-1, 0, 1]] * 3, np.float32))


def _roberts(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Roberts cross (2×2 diagonal differences) magnitude, grey or per channel."""
    return _kernel_edges(a, rng, np.array([[1, 0], [0, -1]], np.float32))


def _laplacian(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """|Laplacian| (aperture 1, 3 or 5) after a Gaussian blur of sigma 0.5-1.5."""
    x = cv2.GaussianBlur(_channels(a, rng), (0, 0), rng.uniform(0.5, 1.5))
    return _edges_out(np.abs(cv2.Laplacian(x, cv2.CV_32F, ksize=rng.choice((1, 3, 5)))), rng)


def _dog(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Difference of Gaussians, sigma 0.8-2 and 1.6-3× that: its magnitude (as an edge
    map) or, half the time, a pencil sketch (black where DoG < -1-4 grey levels)."""
    x = _grey(a)
    s = rng.uniform(0.8, 2.0)
    d = cv2.GaussianBlur(x, (0, 0), s) - cv2.GaussianBlur(x, (0, 0), s * rng.uniform(1.6, 3.0))
    if rng.random() < 0.5:
        return _edges_out(np.abs(d), rng)
    sketch = np.where(d < -rng.uniform(1.0, 4.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(sketch, cv2.COLOR_GRAY2RGB)


def _neon(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Neon glow: Sobel edges (after a sigma 1-2 blur) coloured by the image's own hues or
    one random hue, plus a glow (their blur, sigma 3-8, gain 0.8-2) on black."""
    x = cv2.GaussianBlur(_grey(a), (0, 0), rng.uniform(1.0, 2.0))
    mag = cv2.magnitude(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1))
    edge = np.clip(mag / (np.percentile(mag, 98) + 1e-6), 0, 1)
    hsv = cv2.cvtColor(a, cv2.COLOR_RGB2HSV)
    if rng.random() < 0.5:
        hsv[..., 0] = rng.randrange(180)
    hsv[..., 1], hsv[..., 2] = 255, 255
    colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32) * edge[..., None]
    glow = cv2.GaussianBlur(colour, (0, 0), rng.uniform(3.0, 8.0)) * rng.uniform(0.8, 2.0)
    return np.clip(colour + glow, 0, 255).astype(np.uint8)


def _emboss(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Emboss: mid-grey plus the Sobel derivative along a light azimuth 0-360°, depth
    0.5-2; grey or, one time in three, per channel (a colour relief)."""
    x, az = _channels(a, rng), rng.uniform(0, 2 * math.pi)
    d = (math.cos(az) * cv2.Sobel(x, cv2.CV_32F, 1, 0) +
         math.sin(az) * cv2.Sobel(x, cv2.CV_32F, 0, 1))
    out = np.clip(128 + d * rng.uniform(0.5, 2.0), 0, 255).astype(np.uint8)
    return out if out.ndim == 3 else cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def _invert(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Colour inversion (negative); no parameters."""
    return 255 - a


def _posterise(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Posterise to 1 or 2 bits per channel (2 or 4 levels spread over 0-255)."""
    levels = 2 ** rng.choice((1, 2))
    return ((a.astype(np.uint16) * levels >> 8) * (255 // (levels - 1))).astype(np.uint8)


def _pixelate(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Mosaic of square 8-16 px blocks, each the mean colour of its block."""
    h, w = a.shape[:2]
    b = rng.randint(8, 16)
    small = cv2.resize(a, (-(-w // b), -(-h // b)), interpolation=cv2.INTER_AREA)
    return np.repeat(np.repeat(small, b, axis=0), b, axis=1)[:h, :w]


def _small(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    f = side / max(h, w)
    return a if f >= 1 else cv2.resize(a, (max(1, round(w * f)), max(1, round(h * f))),
                                       interpolation=cv2.INTER_AREA)


def _oil(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Oil paint: mean-shift filtering (spatial radius 5-9, colour radius 25-45) of a copy
    at most 200 px, or an edge-preserving filter (sigma_s 40-100, sigma_r 0.4-0.7) of a
    copy at most 384 px; posterised to 4-6 levels, enlarged back, median 7."""
    h, w = a.shape[:2]
    if rng.random() < 0.5:
        s = cv2.pyrMeanShiftFiltering(_small(a, 200), rng.randint(5, 9), rng.randint(25, 45))
    else:
        s = cv2.edgePreservingFilter(_small(a, 384), flags=cv2.RECURS_FILTER,
                                     sigma_s=rng.uniform(40, 100), sigma_r=rng.uniform(0.4, 0.7))
    step = 256 / rng.randint(4, 6)
    s = (np.floor(s / step) * step + step / 2).astype(np.uint8)
    return cv2.medianBlur(cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC), 7)


def _cubism(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Cubism (GIMP Artistic > Cubism): squares of 2-5 % of the long side, rotated at
    random and filled with the colour under their centre, over a black or darkened copy."""
    h, w = a.shape[:2]
    tile = max(4.0, max(h, w) * rng.uniform(0.02, 0.05))
    out = np.zeros_like(a) if rng.random() < 0.5 else (a // 3)
    src = cv2.GaussianBlur(a, (0, 0), tile / 4)
    centres = [(x, y) for y in np.arange(0, h, tile * 0.8) for x in np.arange(0, w, tile * 0.8)]
    rng.shuffle(centres)
    for cx, cy in centres:
        cx, cy = cx + rng.uniform(0, tile * 0.8), cy + rng.uniform(0, tile * 0.8)
        t, r = rng.uniform(0, math.pi / 2), tile * rng.uniform(0.5, 0.8)
        pts = [(cx + r * math.cos(t + k * math.pi / 2), cy + r * math.sin(t + k * math.pi / 2))
               for k in range(4)]
        colour = src[min(h - 1, int(cy)), min(w - 1, int(cx))].tolist()
        cv2.fillConvexPoly(out, np.array(pts, np.int32), colour, lineType=cv2.LINE_AA)
    return out


def _grid(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = a.shape[:2]
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def _remap(a: np.ndarray, mx: np.ndarray, my: np.ndarray, border: int) -> np.ndarray:
    return cv2.remap(a, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=border)


def _kaleidoscope(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Kaleidoscope: one quadrant mirrored into the other three, or a wedge of pi/n
    (n = 3-6, any orientation, radius scale 0.6-1) mirrored around the centre."""
    h, w = a.shape[:2]
    if rng.random() < 0.4:
        q = a[::-1] if rng.random() < 0.5 else a  # flipped so the image centre
        q = q[:, ::-1] if rng.random() < 0.5 else q  # is the quadrant's bottom-right
        q = q[: h // 2, : w // 2]
        top = np.concatenate([q, q[:, ::-1]], axis=1)
        return np.concatenate([top, top[::-1]], axis=0)
    x, y = _grid(a)
    cx, cy = w / 2, h / 2
    alpha = math.pi / rng.randint(3, 6)
    r = np.hypot(x - cx, y - cy) * rng.uniform(0.6, 1.0)
    t = np.mod(np.arctan2(y - cy, x - cx), 2 * alpha)
    t = np.where(t > alpha, 2 * alpha - t, t) + rng.uniform(0, 2 * math.pi)
    return _remap(a, cx + r * np.cos(t), cy + r * np.sin(t), cv2.BORDER_REFLECT)


def _polar(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Polar coordinates, both ways: rectangular to polar (x = radius up to 0.6-1× the half
    diagonal, y = angle) or polar to rectangular (rows wrapped round a disc of 0.8-1.2× the
    half short side); linear or (one time in four) log radius, centre within ±10 % of the
    middle, black where nothing maps. The same mapping as cv2.warpPolar, done with a remap
    because warpPolar leaves the pixels it cannot sample uninitialised (not seed-stable)."""
    h, w = a.shape[:2]
    log = rng.random() < 0.25
    cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
    x, y = _grid(a)
    if rng.random() < 0.5:
        radius = math.hypot(w, h) / 2 * rng.uniform(0.6, 1.0)
        r = np.exp(x / w * math.log(radius)) if log else x / w * radius
        t = y / h * (2 * math.pi)
        return _remap(a, cx + r * np.cos(t), cy + r * np.sin(t), cv2.BORDER_CONSTANT)
    radius = min(w, h) / 2 * rng.uniform(0.8, 1.2)
    r = np.hypot(x - cx, y - cy)
    rho = np.log(np.maximum(r, 1.0)) / math.log(radius) if log else r / radius
    phi = np.mod(np.arctan2(y - cy, x - cx), 2 * math.pi) / (2 * math.pi)
    return _remap(a, rho * w, phi * h, cv2.BORDER_CONSTANT)


def _spherize(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Spherize / pinch inside the inscribed ellipse (source radius r**k, k 1.6-2.5 or
    0.4-0.65), or a fisheye: a circle of the short side showing the whole picture (k 1.3-2),
    black outside. Centre within ±8 % of the middle."""
    h, w = a.shape[:2]
    x, y = _grid(a)
    cx, cy = w / 2 * (1 + rng.uniform(-0.08, 0.08)), h / 2 * (1 + rng.uniform(-0.08, 0.08))
    if rng.random() < 0.35:
        rad = min(w, h) / 2
        nx, ny = (x - cx) / rad, (y - cy) / rad
        r = np.maximum(np.hypot(nx, ny), 1e-6)
        f = r ** rng.uniform(1.3, 2.0) / r * math.hypot(w, h) / 2
        out = _remap(a, cx + nx * f, cy + ny * f, cv2.BORDER_REFLECT)
        out[r > 1] = 0
        return out
    k = rng.uniform(1.6, 2.5) if rng.random() < 0.5 else rng.uniform(0.4, 0.65)
    nx, ny = (x - cx) / (w / 2), (y - cy) / (h / 2)
    r = np.maximum(np.hypot(nx, ny), 1e-6)
    f = np.where(r < 1, r ** k / r, 1.0)
    return _remap(a, cx + nx * f * (w / 2), cy + ny * f * (h / 2), cv2.BORDER_REFLECT)


def _waves(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Waves: sinusoidal shifts along x and y (amplitude 2-5 % of the size, wavelength
    8-30 %), or concentric ripples (amplitude 1.5-4 %, wavelength 5-15 %)."""
    h, w = a.shape[:2]
    x, y = _grid(a)
    side = max(h, w)
    if rng.random() < 0.35:
        cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)
        r = np.maximum(np.hypot(x - cx, y - cy), 1e-6)
        d = side * rng.uniform(0.015, 0.04) * np.sin(
            2 * np.pi * r / (side * rng.uniform(0.05, 0.15)) + rng.uniform(0, 2 * math.pi))
        return _remap(a, x + (x - cx) / r * d, y + (y - cy) / r * d, cv2.BORDER_REFLECT)
    mx = x + w * rng.uniform(0.02, 0.05) * np.sin(
        2 * np.pi * y / (h * rng.uniform(0.08, 0.3)) + rng.uniform(0, 2 * math.pi))
    my = y + h * rng.uniform(0.02, 0.05) * np.sin(
        2 * np.pi * x / (w * rng.uniform(0.08, 0.3)) + rng.uniform(0, 2 * math.pi))
    return _remap(a, mx, my, cv2.BORDER_REFLECT)


OPS = {
    "sobel": _sobel, "prewitt": _prewitt, "roberts": _roberts, "laplacian": _laplacian,
    "dog": _dog, "neon": _neon, "emboss": _emboss, "invert": _invert,
    "posterise": _posterise, "pixelate": _pixelate, "oil": _oil, "cubism": _cubism,
    "kaleidoscope": _kaleidoscope, "polar": _polar, "spherize": _spherize, "waves": _waves,
}
"""Heavy operations by name, each ``(uint8 RGB array, rng) -> uint8 RGB array``."""

CAPPED = frozenset(OPS) - {"invert", "posterise"}
"""Operations that work on a copy at most :data:`MAX_SIDE` px on the long side:
all but invert and posterise, which are cheap at any size and independent of scale."""


def pick(rng: random.Random) -> str:
    """The operation :func:`heavy` applies; its first draw from ``rng``."""
    return rng.choice(tuple(OPS))


def run(im: Image.Image, name: str, rng: random.Random) -> Image.Image:
    """Apply operation ``name`` with parameters drawn from ``rng``; returns RGB."""
    a = np.asarray(im.convert("RGB"))
    if name in CAPPED:
        a = _small(a, MAX_SIDE)
    return Image.fromarray(np.ascontiguousarray(OPS[name](a, rng)), "RGB")


def heavy(im: Image.Image, rng: random.Random) -> Image.Image:
    """One heavy photo-editor filter, chosen by :func:`pick` (see :data:`OPS`)."""
    return run(im, pick(rng), rng)
