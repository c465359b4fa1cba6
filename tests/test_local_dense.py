"""Dense agreement: copies agree cell by cell; siblings sharing only a part do not."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from monitor.stages.local_dense import agreement, thumbnail


def _gray(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L"))


def test_copy_overlay_and_sibling(photos) -> None:
    ref = photos["astronaut"]  # 512x512
    ref_gray = _gray(ref)
    thumb = thumbnail(ref_gray)
    ident = np.eye(3)
    assert agreement(thumb, (512, 512), ref_gray, ident) == 1.0

    brighter = np.clip(ref_gray.astype(int) * 0.7 + 60, 0, 255).astype(np.uint8)
    assert agreement(thumb, (512, 512), brighter, ident) >= 0.95  # contrast change: NCC holds

    overlaid = ref.copy()
    ImageDraw.Draw(overlaid).rectangle((40, 40, 200, 120), fill=(255, 255, 0))
    assert agreement(thumb, (512, 512), _gray(overlaid), ident) >= 0.8

    sibling = ref.copy()  # same frame, different content in most of the picture
    sibling.paste(photos["coffee"].resize((400, 400)), (56, 56))
    assert agreement(thumb, (512, 512), _gray(sibling), ident) < 0.5


def test_scaled_copy_and_uncovered_cells(photos) -> None:
    ref_gray = _gray(photos["rocket"])  # 640x427
    thumb = thumbnail(ref_gray)
    half = np.asarray(photos["rocket"].convert("L").resize((320, 213)))
    scale = np.diag([0.5, 213 / 427, 1.0])  # gallery pixels → candidate pixels
    assert agreement(thumb, (640, 427), half, scale) >= 0.9
    crop = ref_gray[:, :320]  # left half only: the right half's cells are not counted
    assert agreement(thumb, (640, 427), np.ascontiguousarray(crop), np.eye(3)) >= 0.9
    blank = np.full((427, 640), 255, np.uint8)
    assert agreement(thumb, (640, 427), blank, np.eye(3)) == 0.0


def test_aligned_agreement_any_dihedral_turn(photos) -> None:
    from monitor.stages.local_dense import aligned_agreement

    ref_gray = _gray(photos["rocket"])  # 640x427
    thumb = thumbnail(ref_gray)
    size = (640, 427)
    # a smaller, turned and mirrored copy: found under one of the 8 transforms
    copy = photos["rocket"].resize((400, 267)).transpose(Image.Transpose.ROTATE_90)
    copy = copy.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert aligned_agreement(thumb, size, _gray(copy)) >= 0.9
    # the plain identity-only agreement of that copy is poor: the transform search matters
    stretch = np.diag([copy.width / 640, copy.height / 427, 1.0])
    assert agreement(thumb, size, _gray(copy), stretch) < 0.5
    # an unrelated photo of the same shape does not agree under any transform
    other = _gray(photos["coffee"].resize((640, 427)))
    assert aligned_agreement(thumb, size, other) < 0.5


def test_place_crop_finds_scale_and_position(photos) -> None:
    from monitor.stages.local_dense import place_crop

    ref_gray = _gray(photos["astronaut"])  # 512x512
    thumb, size = thumbnail(ref_gray), (512, 512)
    # a 64 %-area crop at (100, 50), shown at 0.75 of its size
    crop = photos["astronaut"].crop((100, 50, 510, 460)).resize((308, 308))
    found = place_crop(thumb, size, _gray(crop))
    assert found is not None and found[0] >= 0.9
    hom = found[1]  # gallery pixels → candidate pixels: the crop's corner maps near 0
    x, y, w = hom @ np.array([100.0, 50.0, 1.0])
    assert abs(x / w) < 12 and abs(y / w) < 12
    assert abs(hom[0, 0] - 0.75) < 0.05  # the scale the crop was shown at


def test_place_crop_rejects_another_picture(photos) -> None:
    from monitor.stages.local_dense import place_crop

    thumb = thumbnail(_gray(photos["rocket"]))
    other = _gray(photos["coffee"].crop((50, 50, 450, 330)))
    found = place_crop(thumb, (640, 427), other)
    assert found is None or found[0] < 0.6
    flat = np.full((300, 400), 200, np.uint8)  # nothing textured: no placement to judge
    found = place_crop(thumb, (640, 427), flat)
    assert found is None or found[0] < 0.6
