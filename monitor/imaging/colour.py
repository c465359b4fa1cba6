"""Pillow modes to 8-bit RGB (or ``L``), transparency composited onto white.

Artwork drawn in light colours on transparency (a white logo meant for dark pages, a
wallpaper whose shapes live in the alpha channel) vanishes on white: when the white
composite is flat (:data:`FLAT_RANGE`) and the black one is not, black is used instead,
so gallery and candidates alike keep the drawing (measured: 16 of 4,882 corpus images,
e.g. MATE's ``Waves.png``, decoded to a blank white page before).

Used by :mod:`monitor.imaging.decode`; every function takes and returns ``PIL.Image`` objects
of the same size (pixels), 8 bits per band.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

FLAT_RANGE = 4
"""Largest max − min of every band (of 255) for which a composite counts as flat."""
WHITE, BLACK = 255, 0


def onto_white(im: Image.Image, background: int = WHITE) -> Image.Image:
    """RGB of an image with alpha composited onto white (or ``background``, a grey level):
    ``paste`` with itself as mask, one pass with ``Image.alpha_composite``'s 8-bit values
    (tested on all value × alpha)."""
    if im.mode not in ("RGBA", "LA"):
        im = im.convert("RGBA")
    out = Image.new("RGB", im.size, (background,) * 3)
    out.paste(im, mask=im)
    return out


def flat(im: Image.Image) -> bool:
    """True when every band of ``im`` spans at most :data:`FLAT_RANGE` grey levels."""
    ext = im.getextrema()
    bands = ext if isinstance(ext[0], tuple) else (ext,)
    return all(hi - lo <= FLAT_RANGE for lo, hi in bands)


def _visible(im: Image.Image, composite) -> Image.Image:
    """``composite(im, WHITE)``, or ``composite(im, BLACK)`` when only black shows anything."""
    out = composite(im, WHITE)
    if flat(out):
        dark = composite(im, BLACK)
        if not flat(dark):
            return dark
    return out


def rgb(im: Image.Image) -> Image.Image:
    """``im`` itself when RGB, else ``im.convert("RGB")`` (``L`` → three equal bands)."""
    return im if im.mode == "RGB" else im.convert("RGB")


def grey_or_rgb(im: Image.Image) -> Image.Image:
    """``L`` for ``L`` and ``LA`` (alpha onto white: :func:`onto_white`'s values in one
    band), else :func:`to_rgb`; :func:`rgb` of it equals ``to_rgb(im)``."""
    if im.mode == "LA":
        return _visible(im, _grey_onto)
    return im if im.mode == "L" else to_rgb(im)


def _grey_onto(im: Image.Image, background: int) -> Image.Image:
    out = Image.new("L", im.size, background)
    out.paste(im.getchannel("L"), mask=im.getchannel("A"))
    return out


def _flatten_palette(im: Image.Image, background: int = WHITE) -> Image.Image:
    """RGB on white (``background``) of a ``P`` image with transparency: the 256 palette
    entries are composited as pixels would be, then one palette lookup per pixel."""
    lut = im.crop((0, 0, 256, 1))  # keeps palette and transparency
    lut.putdata(range(256))
    im = im.copy()
    im.info.pop("transparency", None)
    im.putpalette(np.asarray(onto_white(lut.convert("RGBA"), background)).tobytes(), "RGB")
    return im.convert("RGB")


def to_rgb(im: Image.Image) -> Image.Image:
    """Bring any Pillow mode to 8-bit RGB; transparency goes onto white."""
    if im.mode == "P":
        return _visible(im, _flatten_palette) if "transparency" in im.info \
            else im.convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if im.mode.startswith("I;16") else (arr.min(), arr.max())
        arr = np.clip((arr - lo) * (255.0 / max(hi - lo, 1e-9)), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr, "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _visible(im, onto_white)
    return im if im.mode == "RGB" else im.convert("RGB")
