"""Pillow modes to 8-bit RGB (or ``L``), transparency composited onto white.

Used by :mod:`monitor.decode`; every function takes and returns ``PIL.Image`` objects
of the same size (pixels), 8 bits per band.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def onto_white(im: Image.Image) -> Image.Image:
    """RGB of an image with alpha composited onto white: ``paste`` with itself as mask,
    one pass with ``Image.alpha_composite``'s 8-bit values (tested on all value × alpha)."""
    if im.mode not in ("RGBA", "LA"):
        im = im.convert("RGBA")
    out = Image.new("RGB", im.size, (255, 255, 255))
    out.paste(im, mask=im)
    return out


def rgb(im: Image.Image) -> Image.Image:
    """``im`` itself when RGB, else ``im.convert("RGB")`` (``L`` → three equal bands)."""
    return im if im.mode == "RGB" else im.convert("RGB")


def grey_or_rgb(im: Image.Image) -> Image.Image:
    """``L`` for ``L`` and ``LA`` (alpha onto white: :func:`onto_white`'s values in one
    band), else :func:`to_rgb`; :func:`rgb` of it equals ``to_rgb(im)``."""
    if im.mode == "LA":
        out = Image.new("L", im.size, 255)
        out.paste(im.getchannel("L"), mask=im.getchannel("A"))
        return out
    return im if im.mode == "L" else to_rgb(im)


def _flatten_palette(im: Image.Image) -> Image.Image:
    """RGB on white of a ``P`` image with transparency: the 256 palette entries are
    composited as pixels would be, then one palette lookup per pixel."""
    lut = im.crop((0, 0, 256, 1))  # keeps palette and transparency
    lut.putdata(range(256))
    im = im.copy()
    im.info.pop("transparency", None)
    im.putpalette(np.asarray(onto_white(lut.convert("RGBA"))).tobytes(), "RGB")
    return im.convert("RGB")


def to_rgb(im: Image.Image) -> Image.Image:
    """Bring any Pillow mode to 8-bit RGB; transparency goes onto white."""
    if im.mode == "P":
        return _flatten_palette(im) if "transparency" in im.info else im.convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if im.mode.startswith("I;16") else (arr.min(), arr.max())
        arr = np.clip((arr - lo) * (255.0 / max(hi - lo, 1e-9)), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr, "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return onto_white(im)
    return im if im.mode == "RGB" else im.convert("RGB")
