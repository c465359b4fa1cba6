"""Region proposals and the local stage's second look at them, on real photos (skimage.data)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monitor.config import LocalSettings
from monitor.matching.engine import Engine
from monitor.matching.stages.local import LocalIndex, LocalStage
from monitor.matching.stages.local_regions import iou, proposals
from tests.test_stage_local import GALLERY, _decode, _rgb

CLUTTER = ("camera", "coins", "page", "horse", "retina", "hubble_deep_field")
PASTE = (1300, 450)


def _page(copy_side: int, name: str | None = "coffee"
          ) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A 1800×1100 'page' of six unrelated real photos with ``name`` (None: nothing)
    pasted small on it; returns the page and the pasted box in its pixels."""
    canvas = Image.new("RGB", (1800, 1100), (250, 250, 250))
    for k, other in enumerate(CLUTTER):
        tile = _rgb(other)
        tile.thumbnail((560, 520))
        canvas.paste(tile, ((k % 3) * 600 + 10, (k // 3) * 560 + 10))
    if name is None:
        return canvas, (0, 0, 0, 0)
    copy = _rgb(name)
    copy.thumbnail((copy_side, copy_side))
    canvas.paste(copy, PASTE)
    return canvas, (PASTE[0], PASTE[1], PASTE[0] + copy.width, PASTE[1] + copy.height)


@pytest.fixture(scope="module")
def settings() -> LocalSettings:
    # candidate features at the gallery's 480 px, so the whole-page pass alone misses
    return LocalSettings(candidate_side=480, max_features=600, proposals=3)


@pytest.fixture(scope="module")
def index(settings: LocalSettings) -> LocalIndex:
    stage, idx = LocalStage(settings), LocalIndex()
    for gid, name in enumerate(GALLERY):
        idx.add(gid, stage.compute(_decode(_rgb(name)), gallery=True))
    return idx


def test_pasted_photo_is_proposed() -> None:
    # a screenshot-like page: a strip of real text above, the photo pasted below it
    page = Image.new("RGB", (900, 600), (245, 245, 245))
    page.paste(_rgb("page").resize((860, 150)), (20, 20))
    page.paste(_rgb("chelsea").resize((300, 200)), (420, 250))
    boxes = proposals(np.asarray(page.convert("L")))
    assert boxes and max(iou(b, (420, 250, 720, 450)) for b in boxes) > 0.9


def test_no_proposals_on_flat_or_tiny_images() -> None:
    assert proposals(np.full((400, 600), 200, np.uint8)) == []
    assert proposals(np.asarray(_rgb("camera").convert("L").resize((60, 60)))) == []
    assert proposals(np.asarray(_rgb("camera").convert("L")), limit=0) == []


def test_small_copy_found_only_through_proposals(settings, index) -> None:
    page, box = _page(200)
    image = _decode(page)
    without = LocalStage(settings.model_copy(update={"proposals": 0}))
    # checked whole, the page keeps at most a weak homography (under min_inliers)
    assert all(h.inliers is not None and h.inliers < settings.min_inliers
               for h in without.match_image(image, index))
    hits = LocalStage(settings).match_image(image, index)
    assert hits and hits[0].gallery_id == GALLERY.index("coffee")
    assert hits[0].inliers >= settings.min_inliers
    # the region is reported in the page's pixels, not the proposal's
    assert np.allclose(hits[0].region, box, atol=4)


def test_page_of_strangers_stays_unmatched(settings, index) -> None:
    page, _ = _page(0, name=None)
    image = _decode(page)
    stage = LocalStage(settings)
    work = image.scaled(640)
    assert proposals(np.asarray(work.convert("L")))  # the tiles were looked at on their own
    assert stage.match_image(image, index) == []


def _pillarboxed(name: str, slot: tuple[int, int]) -> Image.Image:
    """``name`` fitted into a black ``slot`` (bars left and right), as a feed does."""
    photo = _rgb(name)
    photo.thumbnail((10_000, slot[1]))
    out = Image.new("RGB", slot, (0, 0, 0))
    out.paste(photo, ((slot[0] - photo.width) // 2, 0))
    return out


def test_picture_between_bars_is_proposed_and_bars_are_not() -> None:
    """A white-background picture pillarboxed into a slot on a white page (AugLy's
    screenshot templates; a feed post) has no outline of its own: the bars have one
    each. The gap between them is proposed; the bars, which hold nothing, are not."""
    from monitor.matching.stages.local_regions import uniform

    horse = _rgb("horse")  # black silhouette on white
    horse.thumbnail((10_000, 250))
    page = Image.new("RGB", (900, 600), (255, 255, 255))
    page.paste(_pillarboxed("horse", (520, 250)), (200, 300))
    x0 = 200 + (520 - horse.width) // 2
    picture = (x0, 300, x0 + horse.width, 550)
    gray = np.asarray(page.convert("L"))
    boxes = proposals(gray)
    assert boxes and max(iou(b, picture) for b in boxes) > 0.85
    assert not any(uniform(gray[y0 + 3:y1 - 3, x0 + 3:x1 - 3]) for x0, y0, x1, y1 in boxes)


def test_unbarred_strips_side_bars_and_page_margin() -> None:
    from monitor.matching.stages.local_regions import unbarred

    page = Image.new("RGB", (700, 400), (245, 245, 245))
    page.paste(_pillarboxed("coffee", (400, 200)), (150, 100))
    # a proposal box a couple of pixels larger than the slot, as Canny contours give
    box = (148, 98, 552, 302)
    x0, y0, x1, y1 = unbarred(np.asarray(page.crop(box)), box)
    photo_w = round(_rgb("coffee").width * 200 / _rgb("coffee").height)
    assert abs(x0 - (150 + (400 - photo_w) // 2)) <= 3 and abs(x1 - (x0 + photo_w)) <= 3
    assert (y0, y1) == (100, 300)  # only the page margin goes above and below
    assert unbarred(np.full((50, 80, 3), 9, np.uint8), (0, 0, 80, 50)) == (0, 0, 80, 50)


def test_unbarred_keeps_the_pictures_own_margin() -> None:
    """A picture with a white margin of its own (a flag on white, a product shot)
    fitted between black bars: the bars go, the white margin stays, so what is
    matched is the whole picture and not its middle."""
    from monitor.matching.stages.local_regions import unbarred

    photo = _rgb("coffee")
    photo.thumbnail((10_000, 160))
    framed = Image.new("RGB", (photo.width + 40, 200), (255, 255, 255))
    framed.paste(photo, (20, 20))
    page = Image.new("RGB", (framed.width + 200, 200), (0, 0, 0))
    page.paste(framed, (100, 0))
    box = (0, 0, page.width, 200)
    assert unbarred(np.asarray(page), box) == (100, 0, 100 + framed.width, 200)


def _engine(**hash_settings: int) -> Engine:
    """The local stage unable to decide (inlier floors out of reach): only pHash and the
    dense check can find a copy."""
    from monitor.config import Settings
    from tests.test_engine import gallery_engine

    return gallery_engine(Settings(clip={"enabled": False}, hash=hash_settings, local={
        "min_inliers": 5000, "corroborate_min_inliers": 5000}), GALLERY)


def test_region_pasted_whole_found_by_its_phash() -> None:
    """A copy pasted whole into a page (pillarboxed) with the local stage unable to
    decide: the pHash of the proposed sub-image finds it, with its dense check."""
    engine = _engine()
    page = Image.new("RGB", (1200, 800), (245, 245, 245))
    page.paste(_rgb("page").resize((1100, 150)), (50, 20))
    page.paste(_pillarboxed("rocket", (640, 300)), (280, 300))
    matches = engine.match(_decode(page))
    assert matches and matches[0].gallery_id == GALLERY.index("rocket")
    top = matches[0]
    assert top.inliers is None and top.distance is not None and top.distance <= 10
    assert top.agreement is not None and top.agreement >= 0.8
    rocket_w = round(_rgb("rocket").width * 300 / _rgb("rocket").height)
    x0, y0, x1, y1 = top.region
    assert abs(x0 - (280 + (640 - rocket_w) // 2)) <= 6 and abs(y0 - 300) <= 6
    assert abs(x1 - x0 - rocket_w) <= 8 and abs(y1 - 600) <= 6


def test_picture_under_a_caption_band_is_proposed() -> None:
    """A meme: a caption band above the picture. The picture has no outline of its own
    (it runs to the image's edges); the straight seam under the band cuts the image
    (:func:`split_by_lines`) and the part below is proposed."""
    from PIL import ImageDraw

    from monitor.matching.stages.local_regions import split_by_lines

    cat = _rgb("chelsea")
    meme = Image.new("RGB", (cat.width, cat.height + 90), (255, 255, 255))
    ImageDraw.Draw(meme).text((20, 30), "when the code finally works", fill=(0, 0, 0))
    meme.paste(cat, (0, 90))
    gray = np.asarray(meme.convert("L"))
    boxes = proposals(gray)
    picture = (0, 90, cat.width, meme.height)
    assert boxes and max(iou(b, picture) for b in boxes) > 0.95
    # a photo with no straight seam across it is not cut
    import cv2

    from monitor.matching.stages.local_regions import CANNY

    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        assert split_by_lines(cv2.Canny(np.asarray(_rgb(name).convert("L")), *CANNY)) == []


def test_cropped_copy_in_a_page_found_at_the_region_radius() -> None:
    """A cropped copy pillarboxed into a page: its sub-image's pHash is 16 bits from the
    gallery image, beyond ``hash.max_distance`` (12) but within
    ``hash.region_max_distance`` (16); the whole picture agrees densely, so it is kept and
    a corroborated rule can flag it; with every stage on, the default rule flags the page.
    With the region radius at 12 bits it is not found."""
    from monitor.config import Settings
    from monitor.matching.rules import Rule, load_rules
    from tests.test_engine import gallery_engine
    from tests.test_rules import DEFAULTS

    coffee = _rgb("coffee")
    w, h = coffee.size
    crop = coffee.crop((int(w * 0.06), int(h * 0.04), w - int(w * 0.02), h))
    crop.thumbnail((10_000, 300))
    slot = Image.new("RGB", (640, 300))
    slot.paste(crop, ((640 - crop.width) // 2, 0))
    page = Image.new("RGB", (1200, 800), (245, 245, 245))
    page.paste(_rgb("page").resize((1100, 150)), (50, 20))
    page.paste(slot, (280, 300))
    near = _engine(region_max_distance=12).match(_decode(page))
    assert not [m for m in near if m.gallery_id == GALLERY.index("coffee")]
    top = _engine().match(_decode(page))[0]
    assert top.gallery_id == GALLERY.index("coffee") and 12 < top.distance <= 16
    assert top.agreement is not None and top.agreement >= 0.9
    x0, y0, x1, y1 = top.region
    assert abs(x0 - (280 + (640 - crop.width) // 2)) <= 6 and abs(x1 - x0 - crop.width) <= 8
    far = Rule(name="far-phash", corroborated=[{"hash_max_distance": 16, "min_agreement": 0.9}])
    assert far.satisfied_by(top)  # the per-stage evidence a rule can still ask for
    full = gallery_engine(Settings(clip={"enabled": False}), GALLERY).match(_decode(page))[0]
    rules = load_rules(DEFAULTS)  # the default rule: the confidence of all the evidence
    assert full.gallery_id == GALLERY.index("coffee")
    assert any(r.satisfied_by(full) for r in rules if r.verdict == "violation")


def test_far_region_hit_needs_the_whole_picture_on_half_the_grid() -> None:
    """A far sub-image hit (13-16 bits) is kept only on the strict dense check, judged
    on at least ``FAR_MIN_CELLS`` textured cells: a plain card (textured only along its
    outline, as a flag's disc or a flowchart symbol) agrees with its copy, but on too
    few cells to count there."""
    from monitor.matching.hash_evidence import FAR_MIN_CELLS
    from monitor.matching.stages.local_dense import aligned_agreement

    thumb = np.zeros((64, 96), np.uint8)
    thumb[20:44, 30:66] = 200  # a plain card: textured cells only along its outline
    card = np.zeros((120, 180), np.uint8)
    card[40:88, 60:132] = 200
    assert aligned_agreement(thumb, (96, 64), card) >= 0.9
    assert aligned_agreement(thumb, (96, 64), card, FAR_MIN_CELLS) is None


def test_region_hit_needs_the_gallery_images_shape(monkeypatch) -> None:
    """A sub-image's pHash hit counts only when the sub-image has the gallery image's
    shape within ``REGION_MAX_STRETCH``: the rocket squashed to 2.5 times its aspect ratio
    (a strip of a page) still hashes like it, but is not taken for it; allowed that
    stretch, the same page finds it."""
    import monitor.matching.hash_evidence

    page = Image.new("RGB", (1200, 800), (245, 245, 245))
    page.paste(_rgb("page").resize((1100, 150)), (50, 20))
    rocket = _rgb("rocket")  # 640x427
    page.paste(rocket.resize((900, 240)), (150, 350))  # aspect 3.75 against 1.5
    rocket_id = GALLERY.index("rocket")
    engine = _engine()
    assert not [m for m in engine.match(_decode(page)) if m.gallery_id == rocket_id]
    monkeypatch.setattr(monitor.matching.hash_evidence, "REGION_MAX_STRETCH", 3.0)
    top = engine.match(_decode(page))[0]
    assert top.gallery_id == rocket_id and top.inliers is None and top.region is not None
    assert top.agreement is not None and top.agreement >= 0.8


def test_stretch_between_shapes() -> None:
    from monitor.matching.stages.local_geometry import stretch

    assert stretch((640, 427), (640, 427)) == 1.0
    assert abs(stretch((900, 240), (640, 427)) - 2.5) < 0.01
    assert abs(stretch((240, 900), (640, 427)) - 2.5) < 0.01  # a quarter turn away
    assert abs(stretch((427, 640), (640, 427)) - 1.0) < 1e-9


def test_region_too_small_for_its_phash_is_not_hashed(monkeypatch) -> None:
    """A sub-image whose content is small both in pixels (``REGION_MIN_CONTENT``
    squared) and as a share of the candidate (``REGION_MIN_SHARE``) is not looked up
    by its pHash: the astronaut pasted whole at 56×56 px in a framed panel of a 1000×700
    page (0.4 %) is not found that way; allowed 40 px, the same page finds it.
    The local stage is kept from deciding (``_engine``), so only the pHash can."""
    from PIL import ImageDraw

    import monitor.matching.hash_evidence

    page = Image.new("RGB", (1000, 700), (245, 245, 245))
    page.paste(_rgb("page").resize((900, 150)), (50, 20))
    ImageDraw.Draw(page).rectangle((340, 300, 660, 460), fill=(255, 255, 255),
                                   outline=(40, 40, 40), width=3)
    page.paste(_rgb("astronaut").resize((56, 56)), (472, 352))
    gid = GALLERY.index("astronaut")
    engine = _engine()
    assert not [m for m in engine.match(_decode(page)) if m.gallery_id == gid]
    monkeypatch.setattr(monitor.matching.hash_evidence, "REGION_MIN_CONTENT", 40)
    found = [m for m in engine.match(_decode(page)) if m.gallery_id == gid]
    assert found and found[0].region is not None and found[0].inliers is None
    x0, y0, x1, y1 = found[0].region
    assert x0 <= 472 and y0 <= 352 and x1 >= 528 and y1 >= 408  # the panel holding it


def test_sub_image_phash_checks_are_bounded_nearest_first(monkeypatch) -> None:
    """``hash.region_checks`` bounds the dense checks of sub-images' pHash hits per
    candidate, nearest first: the rocket pasted whole into a page is still found with one
    check (its hit is the nearest), and not at all with none; every sub-image hit found
    is checked when the bound is high."""
    from monitor.matching.stages.local import LocalStage

    page = Image.new("RGB", (1200, 800), (245, 245, 245))
    page.paste(_rgb("page").resize((1100, 150)), (50, 20))
    page.paste(_pillarboxed("rocket", (640, 300)), (280, 300))
    checked: list[int] = []
    real = LocalStage.aligned

    def counting(self, image, *args, **kwargs):
        if image.width < page.width:  # a sub-image, not the whole candidate
            checked.append(image.width)
        return real(self, image, *args, **kwargs)

    monkeypatch.setattr(LocalStage, "aligned", counting)
    rocket = GALLERY.index("rocket")
    counts = {}
    for bound in (0, 1, 64):
        checked.clear()
        found = [m for m in _engine(region_checks=bound).match(_decode(page))
                 if m.gallery_id == rocket]
        counts[bound] = len(checked)
        assert bool(found) == (bound > 0), (bound, found)
        assert len(checked) <= bound
    assert counts == {0: 0, 1: 1, 64: counts[64]} and counts[64] > 1, counts
