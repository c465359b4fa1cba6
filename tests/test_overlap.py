"""Overlap both ways: the geometry on known homographies, then the local stage on real images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from monitor.matching.index.local import LocalIndex
from monitor.matching.overlap import box_share, clip, complete, measure, rectangle
from monitor.matching.stages.local import LocalStage
from monitor.matching.stages.local_crop import placement_hit
from monitor.types import Hit, Match
from tests.test_stage_local import _decode, _rgb

OCTAGON = 2 * math.sqrt(2) - 2
"""Area share a square keeps under a 45° turn about its centre on its own canvas: the
regular octagon where the square and its turned copy overlap."""


def _turned(size: float, degrees: float, centre: tuple[float, float]) -> np.ndarray:
    """Corners of a ``size`` square (clockwise from top-left) turned about ``centre``."""
    import cv2

    m = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    pts = rectangle((0, 0, size, size))
    return np.hstack([pts, np.ones((4, 1))]) @ m.T


def test_identity() -> None:
    o = measure(rectangle((0, 0, 400, 300)), (0, 0, 400, 300), (0, 0, 400, 300), (400, 300),
                (400, 300))
    assert o.query == pytest.approx(1.0) and o.target == pytest.approx(1.0)
    assert o.region == (0, 0, 400, 300)


def test_half_crop_scaled_up() -> None:
    # the left half (200x300) of a 400x300 image, shown at twice the size: 400x600
    quad = rectangle((0, 0, 800, 600))
    o = measure(quad, (0, 0, 400, 300), (0, 0, 400, 600), (400, 600), (400, 300))
    assert o.query == pytest.approx(1.0) and o.target == pytest.approx(0.5)
    assert o.region == (0, 0, 200, 300)


def test_mirrored_half_crop_is_the_other_half() -> None:
    # the left half of the mirrored image is the right half of the protected one; the quad
    # keeps the correspondence (protected top-left lands top-right)
    quad = np.array([[400, 0], [0, 0], [0, 300], [400, 300]], float)
    o = measure(quad, (0, 0, 400, 300), (0, 0, 200, 300), (200, 300), (400, 300))
    assert o.query == pytest.approx(1.0) and o.target == pytest.approx(0.5)
    assert o.region == (200, 0, 400, 300)


def test_padded_to_twice_the_size() -> None:
    quad = rectangle((200, 150, 600, 450))  # 400x300 in the middle of 800x600
    for frame in ((0, 0, 800, 600), (200, 150, 600, 450)):  # whole, or the trimmed content
        o = measure(quad, (0, 0, 400, 300), frame, (800, 600), (400, 300))
        assert o.query == pytest.approx(0.25) and o.target == pytest.approx(1.0)
        assert o.region == (0, 0, 400, 300)


def test_rotation() -> None:
    # turned 45° on its own 400x400 canvas: the corners are cut off both ways
    quad = _turned(400, 45, (200, 200))
    o = measure(quad, (0, 0, 400, 400), (0, 0, 400, 400), (400, 400), (400, 400))
    assert o.query == pytest.approx(OCTAGON, abs=1e-6)
    assert o.target == pytest.approx(OCTAGON, abs=1e-6)
    assert o.region == (0, 0, 400, 400)
    # turned 30° on a canvas grown to hold it: all of it, in part of the canvas
    side = 400 * (math.cos(math.pi / 6) + math.sin(math.pi / 6))
    quad = _turned(400, 30, (200, 200)) + (side / 2 - 200)
    o = measure(quad, (0, 0, 400, 400), (0, 0, side, side), (round(side), round(side)),
                (400, 400))
    assert o.query == pytest.approx(400 ** 2 / round(side) ** 2, rel=1e-3)
    assert o.target == pytest.approx(1.0, abs=1e-4)


def test_trimmed_content_is_the_whole_protected_image() -> None:
    # a 400x300 picture inside a 500x380 protected image's white margins, copied without them
    o = measure(rectangle((0, 0, 400, 300)), (50, 40, 450, 340), (0, 0, 400, 300), (400, 300),
                (500, 380))
    assert o.target == pytest.approx(1.0) and o.region == (50, 40, 450, 340)


def test_unknown_size_and_no_overlap() -> None:
    o = measure(rectangle((0, 0, 400, 300)), (0, 0, 400, 300), (0, 0, 400, 300), (400, 300))
    assert o.query == pytest.approx(1.0) and o.target is None and o.region is None
    far = measure(rectangle((500, 0, 900, 300)), (0, 0, 400, 300), (0, 0, 400, 300),
                  (400, 300), (400, 300))
    assert far.query == 0.0 and far.target == 0.0 and far.region is None


def test_clip_is_exact_on_coinciding_edges() -> None:
    # a crop's quad runs along the frame's edges, a hundredth of a pixel off (OpenCV's
    # intersectConvexConvex found nothing here)
    quad = np.array([[-3e-4, 3e-3], [512.0, -0.04], [512.0, 512.0], [0.02, 512.0]])
    part = clip(quad, (0, 0, 256, 512))
    assert len(part) >= 4
    x, y = part[:, 0], part[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    assert area == pytest.approx(256 * 512, rel=1e-3)
    assert len(clip(quad, (600, 0, 700, 100))) == 0


def test_match_reads_the_overlap_of_the_hit_its_region_comes_from() -> None:
    local = Hit("local", 3, 0.9, inliers=40, region=(10, 10, 110, 110), query_overlap=0.25,
                target_overlap=0.8, target_region=(0, 0, 80, 100))
    sub = Hit("hash", 3, 0.7, distance=2, region=(0, 0, 50, 50))
    whole = Hit("hash", 3, 0.8, distance=1)
    m = Match(3, "local", 0.9, (sub, local))
    assert (m.query_overlap, m.target_overlap, m.target_region) == (0.25, 0.8, (0, 0, 80, 100))
    # a whole-image pHash hit alone: all of both, where the copied part is not known
    m = Match(3, "hash", 0.8, (whole,))
    assert (m.query_overlap, m.target_overlap, m.target_region) == (1.0, 1.0, None)
    # a sub-image hit alone: unknown until the candidate's size is known (complete)
    m = Match(3, "hash", 0.7, (sub,))
    assert m.query_overlap is None and m.target_overlap is None
    assert m.region == (0, 0, 50, 50)


def test_complete_fills_what_the_sizes_tell() -> None:
    sub = Hit("descriptor", 3, 0.7, similarity=0.8, region=(0, 0, 200, 100))
    m = complete(Match(3, "descriptor", 0.7, (sub,)), (400, 200), (640, 480))
    assert m.query_overlap == pytest.approx(0.25) and m.target_overlap is None
    m = complete(Match(3, "hash", 0.8, (Hit("hash", 3, 0.8, distance=1),)), (400, 200),
                 (640, 480))
    assert (m.query_overlap, m.target_overlap, m.target_region) == (1.0, 1.0, (0, 0, 640, 480))
    measured = Hit("local", 3, 0.9, inliers=30, region=(0, 0, 10, 10), query_overlap=0.1)
    assert complete(Match(3, "local", 0.9, (measured,)), (400, 200), None).hits == (measured,)
    assert box_share((-10, -10, 200, 100), (400, 200)) == pytest.approx(0.25)


# -- the local stage on real images -----------------------------------------------------


@pytest.fixture(scope="module")
def astronaut() -> tuple[LocalStage, LocalIndex, Image.Image]:
    """The local stage, an index holding skimage's astronaut (512x512) as gallery id 0."""
    stage, index = LocalStage(), LocalIndex()
    image = _rgb("astronaut")
    index.add(0, stage.compute(_decode(image), gallery=True))
    return stage, index, image


def _hit(stage: LocalStage, index: LocalIndex, candidate: Image.Image, gid: int = 0) -> Hit:
    """The homography hit of gallery image ``gid`` in ``candidate``."""
    hits = [h for h in stage.match_image(_decode(candidate), index) if h.gallery_id == gid]
    assert hits and hits[0].inliers, hits
    return hits[0]


def _near(a: tuple[int, ...], b: tuple[int, ...], px: int) -> bool:
    return all(abs(x - y) <= px for x, y in zip(a, b, strict=True))


def test_local_hits_of_a_crop_a_pad_and_a_turned_mirror(astronaut) -> None:
    stage, index, image = astronaut
    crop = _hit(stage, index, image.crop((0, 0, 256, 512)))  # the left half
    assert crop.query_overlap == pytest.approx(1.0, abs=0.01)
    assert crop.target_overlap == pytest.approx(0.5, abs=0.02)
    assert _near(crop.target_region, (0, 0, 256, 512), 4), crop.target_region
    pad = _hit(stage, index, ImageOps.expand(image, border=256, fill=(20, 200, 40)))
    assert pad.query_overlap == pytest.approx(0.25, abs=0.01)
    assert pad.target_overlap == pytest.approx(1.0, abs=0.01)
    assert _near(pad.target_region, (0, 0, 512, 512), 2)
    turned = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).rotate(
        30, expand=True, fillcolor=(255, 255, 255))
    hit = _hit(stage, index, turned)
    assert hit.mirrored
    assert hit.query_overlap == pytest.approx(512 ** 2 / (turned.width * turned.height),
                                              abs=0.02)
    assert hit.target_overlap == pytest.approx(1.0, abs=0.01)
    # the mirrored right half: the protected image's left half was copied
    half = _hit(stage, index, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                .crop((256, 0, 512, 512)))
    assert half.mirrored and half.target_overlap == pytest.approx(0.5, abs=0.02)
    assert _near(half.target_region, (0, 0, 256, 512), 4), half.target_region


def test_crop_placement_is_the_placed_part(astronaut) -> None:
    stage, index, image = astronaut
    crop = image.crop((100, 50, 510, 460)).resize((308, 308))
    hit = placement_hit(stage.compute(_decode(crop)), index.features(0)[0], 0, (308, 308), 0.9)
    assert hit is not None and hit.inliers is None
    assert hit.query_overlap == pytest.approx(1.0, abs=0.01)
    assert hit.target_overlap == pytest.approx(410 ** 2 / 512 ** 2, abs=0.03)
    assert _near(hit.target_region, (100, 50, 510, 460), 6), hit.target_region


def test_index_keeps_the_protected_size_and_margins(tmp_path: Path) -> None:
    """A protected image with white margins: the copied part is given in its own pixels,
    and the saved index keeps what it takes; one saved with other settings is stale."""
    stage, index = LocalStage(), LocalIndex()
    framed = ImageOps.expand(_rgb("astronaut"), border=(60, 40, 60, 40), fill="white")
    index.add(5, stage.compute(_decode(framed), gallery=True))
    index.save(tmp_path, "fp")
    loaded = LocalIndex.load(tmp_path, "fp")
    assert loaded is not None and loaded.original_size(5) == (632, 592)
    view = loaded.features(5)[0]
    assert _near(tuple(round(v) for v in view.frame()), (60, 40, 572, 552), 2), view.frame()
    hit = _hit(stage, loaded, _rgb("astronaut"), 5)
    assert hit.target_overlap == pytest.approx(1.0, abs=0.01)
    assert _near(hit.target_region, (60, 40, 572, 552), 3), hit.target_region
    assert LocalIndex.load(tmp_path, "other settings") is None

