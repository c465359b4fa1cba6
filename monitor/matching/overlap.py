"""Overlap both ways: how much of the found image is the copy, how much of the protected
image was copied.

The two shares TinEye's MatchEngine reports per match as ``query_overlap_percent`` and
``target_overlap_percent``: a protected photo posted whole in a page's corner is a small
share of the found image (query) but all of the protected image (target); a crop that
fills the found image is all of the query and part of the target; a shared background
or frame is a small share of both.

From a local-stage hit: the quad (the protected image's content rectangle projected onto
the candidate by the fitted homography, :mod:`monitor.matching.stages.local`) is clipped to
the part of the candidate that was searched (its trimmed content, or the region proposal
that found the copy); that polygon over the candidate's area is the query share. Mapped
back into the protected image through the inverse homography (the perspective transform
of the content rectangle's corners onto the quad, OpenCV ``getPerspectiveTransform``), it
is the copied part of the protected image: its area over the content rectangle's is the
target share, its bounding box the target region. The polygon lies inside the quad, where
the inverse homography is finite, so nothing crosses the horizon. Polygons are convex
(a convex quad clipped by rectangles), clipped by Sutherland-Hodgman (:func:`clip`).

The protected image's *content* rectangle (uniform borders trimmed,
:meth:`monitor.imaging.decode.DecodedImage.trimmed`) is the whole of it here: the local stage
only ever sees that content, and a copy without the white margin around a product shot
has copied all there is to copy.

All coordinates are pixels of the original (full-size) images, x right, y down; boxes are
``(x0, y0, x1, y1)`` with x1/y1 exclusive; sizes are ``(width, height)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from monitor.matching.stages.local_geometry import project
from monitor.types import Box, Hit, Match

FloatBox = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in (fractional) pixels."""


@dataclass(frozen=True)
class Overlap:
    """One match's overlap both ways.

    Attributes:
        query: share in [0, 1] of the candidate's area that is the copy.
        target: share in [0, 1] of the protected image's content area that was copied,
            None when the protected image's size is unknown.
        region: the copied part of the protected image as a box in its original pixels,
            None when unknown.
    """

    query: float
    target: float | None = None
    region: Box | None = None

    def fields(self) -> dict[str, object]:
        """As :class:`~monitor.types.Hit` keyword arguments (``query_overlap``, ...)."""
        return {"query_overlap": self.query, "target_overlap": self.target,
                "target_region": self.region}


def rectangle(box: FloatBox) -> np.ndarray:
    """``(4, 2) float64`` corners of ``box``, clockwise from top-left (as the local stage's
    quads are: top-left, top-right, bottom-right, bottom-left)."""
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def area(polygon: np.ndarray) -> float:
    """Area (squared pixels) of a simple polygon ``(N, 2)`` (shoelace formula); 0 for
    fewer than 3 points."""
    if len(polygon) < 3:
        return 0.0
    x, y = polygon[:, 0], polygon[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def clip(polygon: np.ndarray, box: FloatBox) -> np.ndarray:
    """The part of convex polygon ``polygon`` ``(N, 2)`` (either orientation) inside
    ``box``, as ``(K, 2) float64`` (``(0, 2)`` when none): Sutherland-Hodgman clipping
    (Sutherland & Hodgman 1974) against the box's four sides. Exact where edges
    coincide with a side, as a crop's do (OpenCV ``intersectConvexConvex`` returned an
    empty polygon for a quad 0.02 px off the frame's edge)."""
    pts = [tuple(p) for p in np.asarray(polygon, np.float64).reshape(-1, 2)]
    for axis, bound, low in ((0, box[0], True), (0, box[2], False),
                             (1, box[1], True), (1, box[3], False)):
        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            cur_in = cur[axis] >= bound if low else cur[axis] <= bound
            prev_in = prev[axis] >= bound if low else prev[axis] <= bound
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
        pts = out
    return np.array(pts, np.float64).reshape(-1, 2)


def bounds(polygon: np.ndarray, size: tuple[int, int]) -> Box:
    """The pixel box of ``polygon`` ``(N, 2)`` (outward to whole pixels), clipped to an
    image of ``size``."""
    w, h = size
    x0, y0 = (math.floor(v) for v in polygon.min(axis=0))
    x1, y1 = (math.ceil(v) for v in polygon.max(axis=0))
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def share(part: float, whole: float) -> float:
    """``part / whole`` clipped to [0, 1] (0 for an empty ``whole``)."""
    return float(min(1.0, max(0.0, part / whole))) if whole > 0 else 0.0


def measure(quad: np.ndarray, gallery_box: FloatBox, frame: FloatBox,
            candidate_size: tuple[int, int],
            gallery_size: tuple[int, int] | None = None) -> Overlap:
    """The overlap of a homography hit (see the module docstring).

    Args:
        quad: ``(4, 2)`` corners of ``gallery_box`` projected onto the candidate (top-left,
            top-right, bottom-right, bottom-left of the protected image, in that order;
            mirrored copies keep the correspondence), candidate pixels.
        gallery_box: the protected image's content rectangle, its pixels.
        frame: the part of the candidate that was searched (its content, or the region
            proposal that found the copy), candidate pixels.
        candidate_size: the candidate's size; the query share's denominator.
        gallery_size: the protected image's size; None leaves ``target`` and ``region``
            unknown.
    """
    quad = np.asarray(quad, np.float64).reshape(4, 2)
    w, h = candidate_size
    x0, y0, x1, y1 = frame
    copy = clip(quad, (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)))
    query = share(area(copy), float(w) * h)
    if gallery_size is None:
        return Overlap(query)
    if len(copy) < 3:
        return Overlap(query, 0.0)
    import cv2

    content = rectangle(gallery_box)
    forward = cv2.getPerspectiveTransform(content.astype(np.float32), quad.astype(np.float32))
    try:
        back = np.linalg.inv(forward)
    except np.linalg.LinAlgError:
        return Overlap(query)
    copied = clip(project(back, copy), gallery_box)
    if len(copied) < 3:
        return Overlap(query, 0.0)
    return Overlap(query, share(area(copied), area(content)), bounds(copied, gallery_size))


def box_share(box: Box, size: tuple[int, int]) -> float:
    """Share in [0, 1] of an image of ``size`` that ``box`` (its pixels) covers."""
    x0, y0, x1, y1 = box
    w, h = size
    inside = max(0, min(x1, w) - max(x0, 0)) * max(0, min(y1, h) - max(y0, 0))
    return share(float(inside), float(w) * h)


def complete(match: Match, candidate_size: tuple[int, int],
             gallery_size: tuple[int, int] | None) -> Match:
    """``match`` with the overlap of each hit that has none filled in where the sizes tell
    it: a sub-image pHash or SSCD hit (``region``, no quad) gets the region's share of the
    candidate as ``query_overlap`` (its target share stays unknown: nothing maps the
    region into the protected image); a whole-image pHash hit (no region) gets 1.0 both
    ways and the whole protected image, ``(0, 0, width, height)`` of ``gallery_size``, as
    ``target_region``. Hits that carry an overlap (the local stage's) are kept as they are.

    The engine's last step once a candidate's matches are merged, where the candidate's
    size (``DecodedImage.width/height``) and the protected image's
    (:meth:`monitor.matching.index.local.LocalIndex.original_size`) are known.
    """
    return replace(match, hits=tuple(_filled(h, candidate_size, gallery_size)
                                     for h in match.hits))


def _filled(hit: Hit, candidate_size: tuple[int, int],
            gallery_size: tuple[int, int] | None) -> Hit:
    if hit.query_overlap is not None:
        return hit
    if hit.region is not None and hit.quad is None:
        return replace(hit, query_overlap=box_share(hit.region, candidate_size))
    if hit.stage == "hash" and hit.region is None:
        whole = (0, 0, *gallery_size) if gallery_size else None
        return replace(hit, query_overlap=1.0, target_overlap=1.0, target_region=whole)
    return hit


COVERED = 0.5
"""A region proposal at least this share of which lies inside a strong hit's region is
not checked again by the local stage (it shows a copy already found)."""


def covered(area: Box, found: list[Box]) -> bool:
    """Whether :data:`COVERED` of box ``area`` lies inside one of the ``found`` boxes (all
    ``(x0, y0, x1, y1)`` in the same pixels)."""
    x0, y0, x1, y1 = area
    size = max(1, (x1 - x0) * (y1 - y0))
    return any(max(0, min(x1, r[2]) - max(x0, r[0])) * max(0, min(y1, r[3]) - max(y0, r[1]))
               >= COVERED * size for r in found)
