"""Dense agreement: copies agree cell by cell; siblings sharing only a part do not."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from monitor.matching.stages.local_dense import agreement, thumbnail


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
    from monitor.matching.stages.local_dense import aligned_agreement

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
    from monitor.matching.stages.local_dense import place_crop

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
    from monitor.matching.stages.local_dense import place_crop

    thumb = thumbnail(_gray(photos["rocket"]))
    other = _gray(photos["coffee"].crop((50, 50, 450, 330)))
    found = place_crop(thumb, (640, 427), other)
    assert found is None or found[0] < 0.6
    flat = np.full((300, 400), 200, np.uint8)  # nothing textured: no placement to judge
    found = place_crop(thumb, (640, 427), flat)
    assert found is None or found[0] < 0.6


def _reference_votes(thumb, ref_size, candidate, homography) -> tuple[int, int]:
    """The per-cell loop :func:`cell_votes` computes in bulk, without shifts."""
    import cv2

    from monitor.matching.stages import local_dense as d

    th, tw = thumb.shape
    m = homography @ np.diag([ref_size[0] / tw, ref_size[1] / th, 1.0])
    warped = cv2.warpPerspective(candidate, m, (tw, th),
                                 flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP)
    cover = cv2.warpPerspective(np.full(candidate.shape, 255, np.uint8), m, (tw, th),
                                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    a = cv2.GaussianBlur(thumb.astype(np.float32), (3, 3), 0.8)
    b = cv2.GaussianBlur(warped.astype(np.float32), (3, 3), 0.8)
    agree = counted = 0
    for ys in np.array_split(np.arange(th), d.GRID):
        for xs in np.array_split(np.arange(tw), d.GRID):
            sl = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
            ca, cb = a[sl].astype(np.float64), b[sl].astype(np.float64)
            if ca.std() < d.MIN_CELL_STD or (cover[sl] > 0).mean() < d.MIN_COVER:
                continue
            counted += 1
            da, db = ca - ca.mean(), cb - cb.mean()
            denom = np.sqrt((da * da).sum() * (db * db).sum())
            agree += bool(denom > 0 and (da * db).sum() / denom > d.CELL_NCC)
    return agree, counted


def test_cell_votes_equal_the_per_cell_computation(photos, monkeypatch) -> None:
    from monitor.matching.stages import local_dense as d

    monkeypatch.setattr(d, "SHIFT", 0)
    ref = _gray(photos["astronaut"])
    thumb = thumbnail(ref)
    turned = np.array([[0.9, 0.1, 20], [-0.1, 0.9, 40], [0.0, 0.0, 1]])
    for cand, hom in ((ref, np.eye(3)), (_gray(photos["coffee"].resize((512, 512))), np.eye(3)),
                      (ref, turned)):
        assert d.cell_votes(thumb, (512, 512), cand, hom) == _reference_votes(
            thumb, (512, 512), cand, hom)


def test_thin_line_art_agrees_despite_a_pixel_of_misregistration(photos, monkeypatch) -> None:
    """Line art (1-px strokes) registered 5 px off at 480 px, 1 px of the 96-px thumbnail:
    at the fitted position under half of the cells agree, at their best offset over 0.6
    (the local stage's floor) do."""
    import cv2

    from monitor.matching.stages import local_dense as d

    lines = 255 - cv2.Canny(_gray(photos["astronaut"].resize((480, 480))), 80, 160)
    thumb = thumbnail(lines)
    off = np.array([[1.0, 0, 5], [0, 1.0, 5], [0, 0, 1]])  # the fit is 5 px off
    assert d.cell_votes(thumb, (480, 480), lines, np.eye(3))[0] > 0
    shifted = agreement(thumb, (480, 480), lines, off)
    monkeypatch.setattr(d, "SHIFT", 0)
    exact = agreement(thumb, (480, 480), lines, off)
    assert shifted >= 0.6 > exact + 0.1
