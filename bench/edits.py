"""Deterministic DISC21-style edit families for benchmarks and tests.

Families follow the transformation groups of the Image Similarity Challenge
2021 (Douze et al., 2021) as produced by AugLy (``augly.image``, the library
used to build DISC21): mild photometric edits, crops, pads, rotations and
flips, overlays, memes, screenshots, photo-editor filters and chains of them, plus
``heavy``: one strong photo-editor filter that keeps the picture but destroys its
gradients (edge detection, emboss, invert, posterise, pixelate, oil paint, kaleidoscope,
polar coordinates, spherize, waves; :mod:`bench.edits_heavy`). Every call is seeded:
``apply(im, family, seed)`` is a pure function of its arguments. All assets (fonts,
emoji, screenshot templates) ship inside the augly package, so nothing is downloaded.

AugLy 1.0.0 predates Pillow 10 and numpy 2; :func:`_patch_augly` restores the
three symbols it needs (``np.float``, ``FreeTypeFont.getsize`` and
``getsize_multiline``) the first time an edit runs.
"""

from __future__ import annotations

import io
import os
import random

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

FAMILIES: tuple[str, ...] = (
    "mild", "crop", "pad", "rotate", "overlay", "meme", "screenshot", "filter", "combo",
    "heavy",
)
"""Edit families accepted by :func:`apply`."""

_PATCHED = False
_MEME_TEXTS = ("LOL", "when the code\nfinally works", "NOPE", "me irl", "mood", "so true")


def _patch_augly() -> None:
    """Re-add APIs removed from numpy 2 / Pillow 10 that augly 1.0.0 still calls."""
    global _PATCHED
    if _PATCHED:
        return
    import numpy as np
    from PIL import ImageFont

    if "float" not in np.__dict__:
        np.float = float  # type: ignore[attr-defined]
    font_cls = ImageFont.FreeTypeFont
    if not hasattr(font_cls, "getsize_multiline"):
        def getsize_multiline(self, text, *args, **kwargs):
            box = ImageDraw.Draw(Image.new("L", (1, 1))).multiline_textbbox(
                (0, 0), text, font=self)
            return box[2] - box[0], box[3] - box[1]
        font_cls.getsize_multiline = getsize_multiline  # type: ignore[attr-defined]
    if not hasattr(font_cls, "getsize"):
        def getsize(self, text, *args, **kwargs):
            box = self.getbbox(text)
            return box[2] - box[0], box[3] - box[1]
        font_cls.getsize = getsize  # type: ignore[attr-defined]
    _PATCHED = True


def _augly():
    _patch_augly()
    import augly.image as imaugs

    return imaugs


def _assets(*parts: str) -> str:
    import augly

    return os.path.join(os.path.dirname(augly.__file__), "assets", *parts)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _mild(im: Image.Image, rng: random.Random) -> Image.Image:
    """Downscale 0.3-0.7, then two of jitter/greyscale/blur, then JPEG quality 20-50."""
    a = _augly()
    im = a.scale(im, factor=rng.uniform(0.3, 0.7))
    for op in rng.sample(("jitter", "grey", "blur"), 2):
        if op == "jitter":
            im = a.color_jitter(im, brightness_factor=rng.uniform(0.7, 1.3),
                                contrast_factor=rng.uniform(0.7, 1.3),
                                saturation_factor=rng.uniform(0.5, 1.5))
        elif op == "grey":
            im = a.grayscale(im)
        else:
            im = a.blur(im, radius=rng.uniform(0.5, 2.0))
    return _jpeg(im, rng.randint(20, 50))


def _crop(im: Image.Image, rng: random.Random) -> Image.Image:
    """Keep 50-90 % of the area at a random position and aspect."""
    area = rng.uniform(0.5, 0.9)
    fw = min(1.0, max(area, rng.uniform(area ** 0.5 * 0.8, area ** 0.5 * 1.25)))
    fh = area / fw
    x0, y0 = rng.uniform(0, 1 - fw), rng.uniform(0, 1 - fh)
    return _augly().crop(im, x1=x0, y1=y0, x2=x0 + fw, y2=y0 + fh)


def _pad(im: Image.Image, rng: random.Random) -> Image.Image:
    """Borders of 10-40 % of each side, one random colour, possibly asymmetric."""
    w, h = im.size
    left, right, top, bottom = (int(s * rng.uniform(0.1, 0.4)) for s in (w, w, h, h))
    out = Image.new("RGB", (w + left + right, h + top + bottom), _colour(rng))
    out.paste(im.convert("RGB"), (left, top))
    return out


def _rotate(im: Image.Image, rng: random.Random) -> Image.Image:
    """A flip, a 90° turn, a small rotation (±5-30°, AugLy crops the corners) or a mix."""
    a = _augly()
    kind = rng.choice(("hflip", "vflip", "turn", "small", "small+flip", "turn+flip"))
    if "flip" in kind:
        im = a.hflip(im) if rng.random() < 0.5 or kind == "hflip" else a.vflip(im)
        if kind == "vflip":
            im = a.vflip(a.hflip(im))
    if "turn" in kind:
        im = im.transpose(rng.choice((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                                      Image.Transpose.ROTATE_270)))
    if "small" in kind:
        im = a.rotate(im, degrees=rng.choice((-1, 1)) * rng.uniform(5, 30))
    return im


def _overlay(im: Image.Image, rng: random.Random) -> Image.Image:
    """Random text, an emoji or stripes over the image."""
    a = _augly()
    kind = rng.choice(("text", "emoji", "stripes"))
    if kind == "text":
        fonts = sorted(f for f in os.listdir(_assets("fonts"))
                       if f.endswith(".ttf") and os.path.exists(_assets("fonts", f[:-4] + ".pkl"))
                       and f.startswith(("Open", "Roboto", "Noto", "Ubuntu", "Montserrat")))
        text = [[rng.randrange(1, 1000) for _ in range(rng.randint(4, 10))]
                for _ in range(rng.randint(1, 2))]
        return a.overlay_text(im.convert("RGB"), text=text,
                              font_file=_assets("fonts", rng.choice(fonts)),
                              font_size=rng.uniform(0.1, 0.25), color=_colour(rng),
                              x_pos=rng.uniform(0, 0.4), y_pos=rng.uniform(0, 0.6),
                              opacity=rng.uniform(0.7, 1.0)).convert("RGB")
    if kind == "emoji":
        group = rng.choice(sorted(os.listdir(_assets("twemojis"))))
        emoji = rng.choice(sorted(os.listdir(_assets("twemojis", group))))
        return a.overlay_emoji(im.convert("RGB"), emoji_path=_assets("twemojis", group, emoji),
                               emoji_size=rng.uniform(0.15, 0.35), opacity=rng.uniform(0.8, 1),
                               x_pos=rng.uniform(0, 0.6), y_pos=rng.uniform(0, 0.6)
                               ).convert("RGB")
    return a.overlay_stripes(im.convert("RGB"), line_width=rng.uniform(0.1, 0.4),
                             line_color=_colour(rng), line_angle=rng.uniform(-90, 90),
                             line_density=rng.uniform(0.2, 0.5),
                             line_type=rng.choice(("solid", "dotted", "dashed")),
                             line_opacity=rng.uniform(0.4, 0.8)).convert("RGB")


def _meme(im: Image.Image, rng: random.Random) -> Image.Image:
    """AugLy meme format: a caption band above the image (Impact font).

    Images narrower than 320 px are first enlarged to 320 px wide: AugLy's font
    fitting goes to a negative size on narrow images (and memes are rarely made
    on thumbnails).
    """
    if im.width < 320:
        im = im.resize((320, max(1, round(im.height * 320 / im.width))), Image.Resampling.BICUBIC)
    h = max(12, int(im.height * rng.uniform(0.15, 0.35)))
    return _augly().meme_format(im.convert("RGB"), text=rng.choice(_MEME_TEXTS),
                                caption_height=max(h, 11), text_color=_colour(rng),
                                meme_bg_color=rng.choice(((255, 255, 255), (0, 0, 0),
                                                          _colour(rng))))


def _screenshot(im: Image.Image, rng: random.Random) -> Image.Image:
    """The image pasted into AugLy's web or mobile screenshot template."""
    template = rng.choice(("web.png", "mobile.png"))
    return _augly().overlay_onto_screenshot(
        im.convert("RGB"), template_filepath=_assets("screenshot_templates", template),
        template_bboxes_filepath=_assets("screenshot_templates", "bboxes.json"),
        crop_src_to_fit=rng.random() < 0.5).convert("RGB")


def _sepia(im: Image.Image) -> Image.Image:
    grey = ImageOps.grayscale(im)
    return ImageOps.colorize(grey, (40, 26, 13), (255, 240, 192))


def _vignette(im: Image.Image, strength: float) -> Image.Image:
    w, h = im.size
    mask = Image.radial_gradient("L").resize((w, h)).point(lambda v: int(v * strength))
    return Image.composite(Image.new("RGB", (w, h)), im, mask)


def _filter(im: Image.Image, rng: random.Random) -> Image.Image:
    """A photo-editor filter series: 2-3 of sepia, curves, vignette, sharpen, posterize."""
    im = im.convert("RGB")
    ops = rng.sample(("sepia", "contrast", "saturation", "brightness", "vignette",
                      "sharpen", "posterize", "autocontrast"), rng.randint(2, 3))
    for op in ops:
        if op == "sepia":
            im = _sepia(im)
        elif op == "contrast":
            im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.5, 1.8))
        elif op == "saturation":
            im = ImageEnhance.Color(im).enhance(rng.uniform(0.0, 2.0))
        elif op == "brightness":
            im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.6, 1.4))
        elif op == "vignette":
            im = _vignette(im, rng.uniform(0.4, 0.9))
        elif op == "sharpen":
            im = im.filter(ImageFilter.UnsharpMask(radius=2, percent=rng.randint(80, 200)))
        elif op == "posterize":
            im = ImageOps.posterize(im, rng.randint(3, 5))
        else:
            im = ImageOps.autocontrast(im, cutoff=rng.uniform(0, 3))
    return im


def _heavy(im: Image.Image, rng: random.Random) -> Image.Image:
    """One heavy photo-editor filter, as in the GIMP / Photoshop filter menus: edge detect
    (Sobel, Prewitt, Roberts, Laplacian, difference of Gaussians, neon glow), emboss,
    invert, posterise (1-2 bits), pixelate (8-16 px), oil paint, cubism, kaleidoscope,
    polar coordinates, spherize or waves. See :mod:`bench.edits_heavy` for the ranges."""
    from bench import edits_heavy

    return edits_heavy.heavy(im, rng)


_SINGLE = {
    "mild": _mild, "crop": _crop, "pad": _pad, "rotate": _rotate, "overlay": _overlay,
    "meme": _meme, "screenshot": _screenshot, "filter": _filter, "heavy": _heavy,
}

_COMBO_FAMILIES = ("crop", "filter", "meme", "mild", "overlay", "pad", "rotate", "screenshot")
"""What ``combo`` chains: the original eight families, sorted, so existing combo seeds
give the same images; ``heavy`` stays out."""


def _combo(im: Image.Image, rng: random.Random) -> Image.Image:
    """2-3 distinct other families chained (mild, if drawn, goes last, as a re-upload would)."""
    names = rng.sample(_COMBO_FAMILIES, rng.randint(2, 3))
    names.sort(key=lambda n: n == "mild")
    for name in names:
        im = _SINGLE[name](im, rng)
    return im


def _rng(family: str, seed: int) -> random.Random:
    return random.Random(f"{family}:{seed}")


def heavy_op_name(seed: int) -> str:
    """The operation ``apply(image, "heavy", seed)`` uses (a key of ``edits_heavy.OPS``)."""
    from bench import edits_heavy

    return edits_heavy.pick(_rng("heavy", seed))


def apply(image: Image.Image, family: str, seed: int) -> Image.Image:
    """Apply one seeded random edit of ``family`` to ``image``; returns a new RGB image.

    Raises:
        ValueError: ``family`` is not in :data:`FAMILIES`.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown edit family {family!r}; expected one of {FAMILIES}")
    rng = _rng(family, seed)
    fn = _combo if family == "combo" else _SINGLE[family]
    return fn(image.convert("RGB"), rng).convert("RGB")
