"""Stage ``local`` on real photos (``skimage.data``): copies found, regions right, strangers not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench.edits import apply
from monitor.config import LocalSettings
from monitor.imaging.decode import DecodedImage, decode_bytes
from monitor.matching.stages.local import Features, LocalIndex, LocalStage
from monitor.matching.stages.local_hue import colour_size

GALLERY = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "immunohistochemistry")
STRANGERS = ("camera", "coins", "hubble_deep_field", "page", "horse", "retina")


def _rgb(name: str) -> Image.Image:
    import skimage.data

    arr = getattr(skimage.data, name)()
    if isinstance(arr, tuple):  # stereo pairs: the left view
        arr = arr[0]
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) * 255 / max(arr.max(), 1)).astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def _decode(im: Image.Image) -> DecodedImage:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return decode_bytes(buf.getvalue())


@pytest.fixture(scope="module")
def stage() -> LocalStage:
    return LocalStage(LocalSettings())


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    return {n: _rgb(n) for n in GALLERY + STRANGERS}


@pytest.fixture(scope="module")
def index(stage: LocalStage, images: dict[str, Image.Image]) -> LocalIndex:
    idx = LocalIndex()
    for gid, name in enumerate(GALLERY):
        idx.add(gid, stage.compute(_decode(images[name]), gallery=True))
    return idx


def _best(stage: LocalStage, index: LocalIndex, im: Image.Image):
    img = _decode(im)
    hits = stage.match(stage.compute(img), index, (img.width, img.height))
    return hits[0] if hits else None, hits


def test_features_shapes(stage: LocalStage, images: dict[str, Image.Image]) -> None:
    f = stage.compute(_decode(images["astronaut"]))
    assert isinstance(f, Features)
    assert f.keypoints.dtype == np.float32 and f.keypoints.shape[1] == 2
    assert f.descriptors.dtype == np.uint8 and f.descriptors.shape == (len(f), 128)
    assert 100 < len(f) <= LocalSettings().max_features
    assert f.mirror is not None and len(f.mirror) == len(f)
    # candidates keep up to candidate_side pixels (the 512-px photo as it is), gallery
    # views are reduced to feature_side
    assert max(f.size) == min(512, LocalSettings().candidate_side)
    assert f.scale == pytest.approx(512 / max(f.size))
    g = stage.compute(_decode(images["astronaut"]), gallery=True)
    assert max(g.size) == LocalSettings().feature_side and g.mirror is None
    assert g.scale == pytest.approx(512 / LocalSettings().feature_side)


def test_self_match_covers_whole_image(stage, index, images) -> None:
    hit, _ = _best(stage, index, images["coffee"])
    assert hit is not None and hit.gallery_id == GALLERY.index("coffee")
    assert not hit.mirrored and hit.inliers >= 50 and hit.score > 0.9
    w, h = images["coffee"].size
    x0, y0, x1, y1 = hit.region
    assert x0 <= 3 and y0 <= 3 and x1 >= w - 3 and y1 >= h - 3


def test_crop_region_is_whole_candidate(stage, index, images) -> None:
    im = images["chelsea"].crop((60, 40, 360, 280))
    hit, _ = _best(stage, index, im)
    assert hit is not None and hit.gallery_id == GALLERY.index("chelsea")
    # the gallery image extends beyond the crop on every side: region is the whole frame
    assert hit.region == (0, 0, 300, 240)
    (qx, qy) = hit.quad[0]
    assert qx == pytest.approx(-60, abs=6) and qy == pytest.approx(-40, abs=6)


def test_pad_region_excludes_borders(stage, index, images) -> None:
    src = images["rocket"]
    w, h = src.size
    padded = Image.new("RGB", (w + 200, h + 90), (20, 200, 90))
    padded.paste(src, (150, 30))
    hit, _ = _best(stage, index, padded)
    assert hit is not None and hit.gallery_id == GALLERY.index("rocket")
    x0, y0, x1, y1 = hit.region
    assert abs(x0 - 150) <= 6 and abs(y0 - 30) <= 6
    assert abs(x1 - (150 + w)) <= 6 and abs(y1 - (30 + h)) <= 6


def test_rotation_37_degrees(stage, index, images) -> None:
    src = images["astronaut"]
    rot = src.rotate(37, expand=True, fillcolor=(255, 255, 255))
    hit, _ = _best(stage, index, rot)
    assert hit is not None and hit.gallery_id == GALLERY.index("astronaut") and not hit.mirrored
    # the projected top-left corner of the gallery image lands where PIL put it
    w, h = src.size
    a = np.deg2rad(37)
    cx, cy = rot.size[0] / 2, rot.size[1] / 2
    ex = cx + (-w / 2) * np.cos(a) + (-h / 2) * np.sin(a)
    ey = cy - (-w / 2) * np.sin(a) + (-h / 2) * np.cos(a)
    assert hit.quad[0] == pytest.approx((ex, ey), abs=8)


@pytest.mark.parametrize("flip", [Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM])
def test_mirror_found_with_correct_quad(stage, index, images, flip) -> None:
    src = images["stereo_motorcycle"]
    hit, _ = _best(stage, index, src.transpose(flip))
    assert hit is not None and hit.gallery_id == GALLERY.index("stereo_motorcycle")
    assert hit.mirrored and hit.inliers >= 40
    w, h = src.size
    # gallery top-left maps to the flipped corner
    expected = (w, 0) if flip == Image.Transpose.FLIP_LEFT_RIGHT else (0, h)
    assert hit.quad[0] == pytest.approx(expected, abs=6)


@pytest.mark.parametrize("family,seed,name", [
    ("overlay", 1, "coffee"), ("overlay", 2, "chelsea"), ("meme", 3, "rocket"),
    ("screenshot", 4, "astronaut"), ("screenshot", 5, "immunohistochemistry"),
    ("crop", 6, "stereo_motorcycle"), ("rotate", 7, "chelsea"), ("combo", 8, "coffee"),
])
def test_edit_families_found(stage, index, images, family, seed, name) -> None:
    edited = apply(images[name], family, seed)
    hit, _ = _best(stage, index, edited)
    assert hit is not None and hit.gallery_id == GALLERY.index(name)
    x0, y0, x1, y1 = hit.region
    assert 0 <= x0 < x1 <= edited.width and 0 <= y0 < y1 <= edited.height


def test_meme_region_below_caption(stage, index, images) -> None:
    src = images["rocket"]
    edited = apply(src, "meme", 11)
    caption = edited.height - src.height
    hit, _ = _best(stage, index, edited)
    assert hit is not None and hit.gallery_id == GALLERY.index("rocket")
    x0, y0, x1, y1 = hit.region
    assert abs(y0 - caption) <= 6 and abs(y1 - edited.height) <= 6
    assert x0 <= 6 and x1 >= edited.width - 6


@pytest.mark.parametrize("name", STRANGERS)
def test_strangers_not_matched(stage, index, images, name) -> None:
    _, hits = _best(stage, index, images[name])
    assert hits == []


def test_extra_ids_are_verified(stage, index, images) -> None:
    img = _decode(images["chelsea"])
    q = stage.compute(img)
    hits = stage.match(q, index, (img.width, img.height), extra_ids=[GALLERY.index("coffee")])
    assert [h.gallery_id for h in hits] == [GALLERY.index("chelsea")]


def test_save_load_round_trip(tmp_path, stage, index, images) -> None:
    index.save(tmp_path, "fp-1")
    loaded = LocalIndex.load(tmp_path, "fp-1")
    assert loaded is not None and len(loaded) == len(index) == len(GALLERY)
    a, b = index.features(2)[0], loaded.features(2)[0]
    assert np.array_equal(a.keypoints, b.keypoints)
    assert np.array_equal(a.descriptors, b.descriptors)
    assert a.size == b.size and a.scale == pytest.approx(b.scale)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.colour, b.colour)
    w, h = colour_size(a.image.shape)
    assert a.colour.shape == (h, w, 3) and 2 * h < a.image.shape[0] + 2
    hit, _ = _best(stage, loaded, images["chelsea"].rotate(90, expand=True))
    assert hit is not None and hit.gallery_id == GALLERY.index("chelsea")
    assert loaded.descriptor_count == index.descriptor_count > 0
    assert LocalIndex.load(tmp_path, "fp-2") is None
    assert LocalIndex.load(tmp_path / "missing", "fp-1") is None


def test_remove(stage, images) -> None:
    idx = LocalIndex()
    for gid in (5, 7):
        idx.add(gid, stage.compute(_decode(images[GALLERY[gid - 5]]), gallery=True))
    idx.remove([5])
    assert len(idx) == 1 and idx.features(5) == []
    hits = stage.match(stage.compute(_decode(images[GALLERY[0]])), idx, images[GALLERY[0]].size)
    assert hits == []


def test_corroborated_ids_verified_down_to_lower_floor(images) -> None:
    """Every image verified (voted or proposed by another stage) goes down to
    ``corroborate_min_inliers``; below ``min_inliers`` (here out of reach on purpose)
    its hit is weak, and a stranger proposed by another stage still needs a real
    homography."""
    strict = LocalStage(LocalSettings(min_inliers=5000, corroborate_min_inliers=10))
    idx = LocalIndex()
    for gid, name in enumerate(GALLERY):
        idx.add(gid, strict.compute(_decode(images[name]), gallery=True))
    img = _decode(images["coffee"].rotate(90, expand=True))
    q = strict.compute(img)
    for extra in ([], [GALLERY.index("coffee")]):
        hits = strict.match(q, idx, (img.width, img.height), extra_ids=extra)
        assert [h.gallery_id for h in hits] == [GALLERY.index("coffee")]
        assert 10 <= hits[0].inliers < 5000
    hits = strict.match(q, idx, (img.width, img.height), extra_ids=[GALLERY.index("rocket")])
    assert GALLERY.index("rocket") not in [h.gallery_id for h in hits]


def _small_turned(im: Image.Image, side: int, angle: float) -> DecodedImage:
    small = im.copy()
    small.thumbnail((side, side))
    return _decode(small.rotate(angle, expand=True, fillcolor="white"))


def test_weak_homography_of_a_small_turned_copy(images) -> None:
    """The rocket at 100 px turned 20 degrees keeps about a dozen RANSAC inliers. With
    ``min_inliers`` set above that, the hit is still reported, as a weak one with the dense
    agreement a corroborated rule asks for, down to ``corroborate_min_inliers``; with that
    floor raised to ``min_inliers``, not at all."""
    weak = LocalStage(LocalSettings(min_inliers=40, corroborate_min_inliers=6))
    idx = LocalIndex()
    for gid, name in enumerate(GALLERY):
        idx.add(gid, weak.compute(_decode(images[name]), gallery=True))
    img = _small_turned(images["rocket"], 100, 20)
    hits = weak.match_image(img, idx)
    assert [h.gallery_id for h in hits] == [GALLERY.index("rocket")]
    assert 6 <= hits[0].inliers < 40 and hits[0].agreement >= 0.9
    strong_only = LocalStage(LocalSettings(min_inliers=40, corroborate_min_inliers=40))
    assert strong_only.match_image(img, idx) == []


def test_weak_homography_of_recoloured_copy_is_dropped(images) -> None:
    """The same small turned rocket with its colour channels swapped keeps its grey
    structure, so its keypoints and dense agreement, but not its hues
    (:mod:`monitor.matching.stages.local_hue`): a weak hit needs both; a strong one stays."""
    weak = LocalStage(LocalSettings(min_inliers=40, corroborate_min_inliers=6))
    idx = LocalIndex()
    for gid, name in enumerate(GALLERY):
        idx.add(gid, weak.compute(_decode(images[name]), gallery=True))
    r, g, b = images["rocket"].split()
    swapped = Image.merge("RGB", (b, r, g))
    assert weak.match_image(_small_turned(swapped, 100, 20), idx) == []
    big = weak.match_image(_decode(swapped.rotate(20, expand=True, fillcolor="white")), idx)
    assert [h.gallery_id for h in big] == [GALLERY.index("rocket")] and big[0].inliers >= 40


def test_gallery_without_keypoints_matches_nothing(stage) -> None:
    """A gallery of flat images (no keypoint at all) must not break the vote search."""
    idx = LocalIndex()
    idx.add(0, stage.compute(_decode(Image.new("RGB", (300, 200), (90, 140, 200))), gallery=True))
    assert idx.descriptor_count == 0
    img = _decode(_rgb("coffee"))
    assert stage.match_image(img, idx) == []


def test_many_inliers_exempt_from_dense_floor(index, images) -> None:
    """A homography with ``agreement_exempt_inliers`` inliers stands whatever its dense
    agreement; below that, the dense floor still decides (here an impossible 1.01)."""
    copy = images[GALLERY[0]].resize((400, 400))
    strict = LocalStage(LocalSettings(min_agreement=1.01, agreement_exempt_inliers=100_000,
                                     crop_min_agreement=0))
    assert _best(strict, index, copy)[0] is None
    exempt = LocalStage(LocalSettings(min_agreement=1.01, agreement_exempt_inliers=100,
                                     crop_min_agreement=0))
    hit = _best(exempt, index, copy)[0]
    assert hit is not None and hit.gallery_id == 0 and hit.inliers >= 100
    assert hit.agreement is not None and hit.agreement < 1.01


@pytest.mark.parametrize("name", ["coffee", "astronaut", "chelsea"])
def test_aligned_agreement_of_a_crop_comes_from_its_placement(stage, index, images, name):
    """The dense check of a pHash hit (no homography): a crop of the gallery image
    (80 % × 75 % of it), stretched over the whole picture, agrees nowhere; placed where
    it sits, it agrees. Other gallery images stay low either way."""
    from monitor.matching.stages.local_dense import aligned_agreement
    from monitor.matching.stages.local_features import feature_gray

    w, h = images[name].size
    crop = _decode(images[name].crop((int(0.05 * w), int(0.15 * h), int(0.85 * w), int(0.9 * h))))
    gid = GALLERY.index(name)
    ref = index.features(gid)[0]
    gray = feature_gray(np.asarray(crop.trimmed(480)[0].convert("L")), 480)
    assert aligned_agreement(ref.image, ref.size, gray) < 0.5
    assert stage.aligned(crop, index, gid) >= 0.8
    assert all((stage.aligned(crop, index, other) or 0) < 0.5
               for other in range(len(GALLERY)) if other != gid)
