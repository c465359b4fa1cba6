"""Crop placements: a crop is placed where it sits and backed by keypoint matches."""

from __future__ import annotations

from monitor.stages.local import LocalStage
from monitor.stages.local_crop import MIN_SUPPORT, placement_hit, support
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
