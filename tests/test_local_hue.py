"""Hue agreement: copies under colour edits keep their hues; recoloured layouts do not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from monitor.matching.stages.local_dense import aligned_agreement, place_crop, thumbnail
from monitor.matching.stages.local_hue import (
    HUE_MIN,
    colour_thumbnail,
    hue_agreement,
    hue_consistent,
)


def _thumb(im: Image.Image) -> np.ndarray:
    gray = thumbnail(np.asarray(im.convert("L")))
    return colour_thumbnail(np.asarray(im), (gray.shape[1], gray.shape[0]))


def _stretch(ref: np.ndarray, cand: Image.Image) -> np.ndarray:
    """Thumbnail pixels of ``ref`` → pixels of ``cand`` (the whole image on the whole)."""
    return np.diag([cand.width / ref.shape[1], cand.height / ref.shape[0], 1.0])


def _hue(ref: Image.Image, cand: Image.Image) -> float | None:
    thumb = _thumb(ref)
    return hue_agreement(thumb, np.asarray(cand.convert("RGB")), _stretch(thumb, cand))


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _sepia(im: Image.Image) -> Image.Image:
    """The classic sepia matrix (as photo editors and ``bench.edits`` apply it)."""
    x = np.asarray(im, np.float32) @ np.array([[0.393, 0.349, 0.272], [0.769, 0.686, 0.534],
                                               [0.189, 0.168, 0.131]], np.float32)
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


MANY_HUES = ["astronaut", "rocket", "logo"]
"""scikit-image pictures whose chromatic pixels have several hues (mean resultant length
0.85-0.88); coffee, chelsea and retina have one (0.99-1.0)."""


def _photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()[..., :3].astype(np.uint8))


@pytest.mark.parametrize("name", MANY_HUES)
def test_copies_under_colour_edits_keep_their_hues(name) -> None:
    ref = _photo(name)
    edits = {
        "same": ref,
        "jpeg q20, half size": _jpeg(ref.resize((ref.width // 2, ref.height // 2)), 20),
        "saturation 1.8": ImageEnhance.Color(ref).enhance(1.8),
        "contrast 0.6, brightness 1.3": ImageEnhance.Brightness(
            ImageEnhance.Contrast(ref).enhance(0.6)).enhance(1.3),
        "posterize 3 bits": ImageOps.posterize(ref, 3),
    }
    for label, copy in edits.items():
        found = _hue(ref, copy)
        assert found is not None and found >= 0.8, (label, found)
    # halved saturation leaves fewer chromatic pixels, of fewer hues: judged or not,
    # never rejected
    found = _hue(ref, ImageEnhance.Color(ref).enhance(0.5))
    assert found is None or found >= 0.8


@pytest.mark.parametrize("name", MANY_HUES + ["coffee", "chelsea"])
def test_greyscale_and_sepia_copies_are_not_judged(name) -> None:
    """Greyscale leaves no hue to judge; sepia leaves one (toned), whatever the picture's."""
    ref = _photo(name)
    assert _hue(ref, ImageOps.grayscale(ref).convert("RGB")) is None
    assert _hue(ref, _sepia(ref)) is None


@pytest.mark.parametrize("name", MANY_HUES + ["coffee"])
def test_recoloured_picture_disagrees(name) -> None:
    """The same picture with its colour channels swapped: every grey edge is where it
    was, but the hues are not. Coffee is one-hued but vivid, so not toned."""
    ref = _photo(name)
    r, g, b = ref.split()
    swapped = Image.merge("RGB", (b, r, g))
    found = _hue(ref, swapped)
    assert found is not None and found < HUE_MIN
    thumb = _thumb(ref)
    feature_pixels = np.diag([ref.width / thumb.shape[1], ref.height / thumb.shape[0], 1.0])
    stretch = np.diag([swapped.width / ref.width, swapped.height / ref.height, 1.0])
    assert not hue_consistent(thumb, np.asarray(swapped), stretch, ref.size)
    assert hue_consistent(thumb, np.asarray(ref), stretch, ref.size)
    assert hue_consistent(None, np.asarray(swapped), feature_pixels, ref.size)


def test_a_recoloured_picture_of_one_muted_hue_is_not_judged() -> None:
    """The limit of the check: the cat's fur is one muted brown (median chroma under
    ``TINT_CHROMA``), and so is its recoloured copy, as a sepia copy would be; the check
    abstains rather than reject what could be a toned copy."""
    ref = _photo("chelsea")
    r, g, b = ref.split()
    assert _hue(ref, Image.merge("RGB", (b, r, g))) is None


def _disc_flag(size: tuple[int, int], field: tuple, disc: tuple, band: tuple | None,
               radius: float) -> Image.Image:
    """A flag of a disc on a field (and a middle band, as Laos's)."""
    w, h = size
    im = Image.new("RGB", size, field)
    draw = ImageDraw.Draw(im)
    if band is not None:
        draw.rectangle((0, h // 4, w, 3 * h // 4), fill=band)
    r = radius * h
    draw.ellipse((w / 2 - r, h / 2 - r, w / 2 + r, h / 2 + r), fill=disc)
    return im


def test_a_flag_of_the_same_layout_in_other_colours() -> None:
    """Bangladesh (red disc on green) cropped around its disc lies on Laos (white disc on
    a blue band, red above and below) cell for cell in grey (benchmark seed 5 flagged it
    at 1.0 on 28 cells); its hues do not. A sepia copy of Laos itself still agrees."""
    laos = _disc_flag((600, 400), (206, 17, 38), (255, 255, 255), (0, 40, 104), 0.2)
    bangladesh = _disc_flag((600, 400), (0, 106, 78), (244, 42, 65), None, 0.3)
    crop = bangladesh.crop((160, 60, 440, 340))
    gray = np.asarray(laos.convert("L"))
    thumb, ref_size = thumbnail(gray), (laos.width, laos.height)
    colour = _thumb(laos)

    def agree(cand: Image.Image, colours) -> float | None:
        view = np.asarray(cand.convert("L"))
        rgb = np.asarray(cand.convert("RGB"))
        stretched = aligned_agreement(thumb, ref_size, view, 1, colours and (colour, rgb))
        placed = place_crop(thumb, ref_size, view, 8, colours and (colour, rgb))
        return max([a for a in (stretched, placed and placed[0]) if a is not None],
                   default=None)

    grey_only = agree(crop, None)
    assert grey_only is not None and grey_only >= 0.9  # the confusion this module removes
    with_hue = agree(crop, True)
    assert with_hue is None or with_hue < 0.6
    kept = agree(_jpeg(_sepia(laos).resize((300, 200)), 30), True)
    assert kept is not None and kept >= 0.9
    kept = agree(_jpeg(ImageEnhance.Color(laos).enhance(0.6), 30), True)
    assert kept is not None and kept >= 0.9


def test_a_sepia_copy_of_a_one_colour_flag_is_kept() -> None:
    """Sepia turns Japan's red disc orange-brown, some 40 degrees of hue away; the copy
    has one hue, so it is toned and not judged (benchmark seed 11: a filtered copy of
    Japan's flag, lost while only the gallery image's hues were asked to vary)."""
    japan = _disc_flag((600, 400), (255, 255, 255), (188, 0, 45), None, 0.3)
    gray = np.asarray(japan.convert("L"))
    thumb, colour = thumbnail(gray), _thumb(japan)
    copy = _jpeg(_sepia(japan), 40)
    rgb = np.asarray(copy)
    found = aligned_agreement(thumb, japan.size, np.asarray(copy.convert("L")), 1, (colour, rgb))
    assert found is not None and found >= 0.9
    assert _hue(japan, copy) is None
