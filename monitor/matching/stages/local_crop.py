"""Crop placements: a candidate that is a crop of a plain gallery graphic.

Flags, pictograms and flat clip art give too few keypoints for a homography, so a
crop of one is placed instead: :func:`~monitor.matching.stages.local_dense.place_crop` finds
the scale and position where the candidate sits in the gallery thumbnail and judges
it cell by cell (dense NCC agreement). Two smooth images (gradient wallpapers) can
agree there too, so a placement must also be backed by keypoint matches (Lowe's ratio
test) that land where the placement puts them: at least :data:`MIN_SUPPORT` within
:data:`SUPPORT_PX` pixels. Measured on the benchmark split (``bench.accuracy --seed 5``):
of 9 missed crops, 6 placed at an agreement of 0.9 or more with 3 or more supporting
matches; a blurred aurora wallpaper placed at 0.92 in another with none.
"""

from __future__ import annotations

import numpy as np

from monitor.matching.overlap import measure
from monitor.matching.stages.local_dense import place_crop
from monitor.matching.stages.local_features import Features
from monitor.matching.stages.local_geometry import box, corners, project
from monitor.matching.stages.local_matching import RATIO, ratio_matches
from monitor.types import Hit

MIN_SUPPORT = 3
"""Ratio-test keypoint matches that must agree with a placement."""
SUPPORT_PX = 16.0
"""Distance (candidate feature pixels, longest side ``candidate_side``) within which a
gallery keypoint mapped by the placement must land on its matched candidate keypoint."""


def support(query: Features, ref: Features, homography: np.ndarray) -> int:
    """Ratio-test matches of ``query`` to ``ref`` that ``homography`` ``(3, 3)`` (gallery
    feature pixels → candidate feature pixels) maps within :data:`SUPPORT_PX`."""
    if len(query) < 2 or len(ref) < 2:
        return 0
    qi, ri = ratio_matches(query.descriptors, ref.descriptors, RATIO)
    if not len(qi):
        return 0
    p = project(homography, ref.keypoints[ri].astype(np.float64))
    return int((np.linalg.norm(p - query.keypoints[qi], axis=1) < SUPPORT_PX).sum())


def placement_hit(query: Features, ref: Features, gallery_id: int,
                  original_size: tuple[int, int], floor: float) -> Hit | None:
    """A ``local`` hit when ``query`` (a candidate's features with its grey image) is a
    crop of ``ref`` (a gallery view with its thumbnail) at an agreement of ``floor`` or
    more, keeping its hues (:mod:`~monitor.matching.stages.local_hue`), backed by
    :data:`MIN_SUPPORT` matches; region and quad in original candidate
    pixels, ``inliers`` None, ``score`` half the agreement, the overlap both ways
    (:func:`~monitor.matching.overlap.measure`: the candidate is the placed part of the
    protected image). Else None."""
    if ref.image is None or query.image is None:
        return None
    placed = place_crop(ref.image, ref.size, query.image, colours=(ref.colour, query.colour))
    if placed is None or placed[0] < floor or support(query, ref, placed[1]) < MIN_SUPPORT:
        return None
    quad = project(placed[1], corners(ref.size)) * query.scale + np.asarray(query.offset)
    overlap = measure(quad, ref.frame(), query.frame(), original_size, ref.original)
    return Hit(stage="local", gallery_id=int(gallery_id), score=0.5 * placed[0],
               agreement=placed[0], region=box(quad, original_size),
               quad=tuple((float(x), float(y)) for x, y in quad), **overlap.fields())


PLENTY = 100
"""Keypoints both images must have before :func:`placement_supported` asks for
:data:`MIN_SUPPORT` of them to back a placement. Flags and pictograms have fewer
(the reason placements exist) and are judged on the dense agreement alone; star
fields and photos have hundreds, and a copy keeps enough of them (measured, seed 5:
two galaxy images placed at 0.90 and 0.94 in the M109 image, with 1 and 0 supporting
matches of 240 gallery and 600 candidate keypoints)."""


def placement_supported(query: Features, ref: Features, homography: np.ndarray,
                        placed_width: int) -> bool:
    """Whether a placement of the candidate is backed by keypoints, or too plain to ask.

    ``homography`` ``(3, 3)`` maps gallery feature pixels to the pixels of the candidate
    image the placement was found on, ``placed_width`` pixels wide (the same trimmed
    content as ``query``, at another size). True when either side has fewer than
    :data:`PLENTY` keypoints, else when :func:`support` finds :data:`MIN_SUPPORT`.
    """
    if len(query) < PLENTY or len(ref) < PLENTY:
        return True
    k = query.size[0] / placed_width
    return support(query, ref, np.diag([k, k, 1.0]) @ homography) >= MIN_SUPPORT
