"""Crop placements: a crop is placed where it sits and backed by keypoint matches."""

from __future__ import annotations

from monitor.matching.stages.local import LocalStage
from monitor.matching.stages.local_crop import MIN_SUPPORT, placement_hit, support
from tests.test_stage_local import _decode, _rgb


def test_crop_of_gallery_image_is_placed_with_region() -> None:
    stage = LocalStage()
    ref = stage.compute(_decode(_rgb("astronaut")), gallery=True)  # 512x512
    crop = _rgb("astronaut").crop((100, 50, 510, 460)).resize((308, 308))
    query = stage.compute(_decode(crop))
    hit = placement_hit(query, ref, 7, (308, 308), 0.9)
    assert hit is not None and hit.gallery_id == 7 and hit.inliers is None
    assert hit.agreement >= 0.9 and hit.stage == "local"
    # the gallery image extends beyond the crop: the region is the whole candidate
    x0, y0, x1, y1 = hit.region
    assert x0 <= 4 and y0 <= 4 and x1 >= 304 and y1 >= 304
    # the top-left corner of the gallery image lies up and left of the candidate
    assert hit.quad[0][0] < -50 and hit.quad[0][1] < -20


def test_placement_needs_supporting_matches() -> None:
    stage = LocalStage()
    ref = stage.compute(_decode(_rgb("astronaut")), gallery=True)
    other = stage.compute(_decode(_rgb("coffee").crop((50, 50, 450, 350))))
    assert placement_hit(other, ref, 7, (400, 300), 0.0) is None
    # the support count of a stranger under any placement stays below the floor
    import numpy as np

    assert support(other, ref, np.eye(3)) < MIN_SUPPORT


def _hubble(box: tuple[int, int, int, int]):
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.hubble_deep_field()).crop(box)  # 1000x872 Hubble photo


def test_placement_of_a_star_field_needs_its_stars() -> None:
    import numpy as np

    from monitor.matching.stages.local_crop import PLENTY, placement_supported

    stage = LocalStage()
    ref = stage.compute(_decode(_hubble((0, 0, 500, 436))), gallery=True)
    crop = stage.compute(_decode(_hubble((100, 80, 400, 340))))
    assert len(ref) >= PLENTY and len(crop) >= PLENTY
    # where the crop truly sits: gallery feature px -> gallery px -> crop px -> crop feature px
    sg, sc = 500 / ref.size[0], 300 / crop.size[0]
    true = np.array([[sg / sc, 0, -100 / sc], [0, sg / sc, -80 / sc], [0, 0, 1.0]])
    assert placement_supported(crop, ref, true, crop.size[0])
    # another patch of sky placed at that spot: plenty of stars, none where they should be
    other = stage.compute(_decode(_hubble((500, 436, 800, 696))))
    assert len(other) >= PLENTY and not placement_supported(other, ref, true, other.size[0])
    # the same placement found on an image of half the width: the homography is rescaled
    half = np.diag([0.5, 0.5, 1.0]) @ true
    assert placement_supported(crop, ref, half, crop.size[0] // 2)


def test_placement_of_a_plain_graphic_is_not_asked_for_keypoints() -> None:
    import numpy as np
    from PIL import Image

    from monitor.matching.stages.local_crop import PLENTY, placement_supported

    stage = LocalStage()
    flag = Image.new("RGB", (300, 200), (0, 56, 168))
    flag.paste((206, 17, 38), (0, 100, 300, 200))  # two bands: a handful of keypoints
    ref = stage.compute(_decode(flag), gallery=True)
    query = stage.compute(_decode(flag.crop((30, 20, 270, 180))))
    assert len(ref) < PLENTY
    assert placement_supported(query, ref, np.eye(3), query.size[0])
