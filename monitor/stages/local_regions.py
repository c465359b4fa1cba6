"""Region proposals for the ``local`` stage: rectangular sub-images worth checking alone.

A copy pasted into a screenshot, a web page, a meme or a collage is usually an
axis-aligned rectangle with a visible edge. Checked whole, such a candidate
spends most of its keypoint budget and feature resolution on the surrounding
interface (text, avatars, icons), and the copy may get too few keypoints to
verify. When the whole candidate gives no verified hit, the local stage checks
the few largest rectangles found here as candidates of their own
(:meth:`monitor.stages.local.LocalStage.match_image`).

Proposals: Canny edges (Canny 1986; OpenCV ``Canny``), dilated by one pixel,
their outer contours, and each contour's bounding box kept when the contour's
convex hull fills at least :data:`MIN_FILL` of it (a rectangle, not a diagonal
stroke) and the box covers between :data:`MIN_AREA` and :data:`MAX_AREA` of the
image. Overlapping boxes (IoU above :data:`MAX_IOU`) keep the larger one.
"""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in pixels of the image the proposals were found on."""

MIN_AREA = 0.04
"""Smallest proposal, as a fraction of the image area."""
MAX_AREA = 0.8
"""Largest proposal, as a fraction of the image area (the whole image is checked anyway)."""
MIN_SIDE = 40
"""Shortest proposal side in pixels (of the image searched)."""
MIN_FILL = 0.85
"""Convex-hull area over bounding-box area for a contour to count as a rectangle."""
MAX_IOU = 0.7
"""Proposals overlapping a larger kept one by more than this are dropped."""
CANNY = (40, 120)
"""Canny hysteresis thresholds (grey levels of 255)."""


def proposals(gray: np.ndarray, limit: int = 3) -> list[Box]:
    """The ``limit`` largest rectangular regions of ``gray`` ``(H, W) uint8``, largest first.

    Returns boxes in pixels of ``gray``; an empty list for an image without one.
    """
    import cv2

    h, w = gray.shape
    if limit <= 0 or min(h, w) < 2 * MIN_SIDE:
        return []
    edges = cv2.dilate(cv2.Canny(gray, *CANNY), np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[int, Box]] = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        area = bw * bh
        if not (MIN_AREA * w * h <= area <= MAX_AREA * w * h) or min(bw, bh) < MIN_SIDE:
            continue
        if cv2.contourArea(cv2.convexHull(c)) >= MIN_FILL * area:
            found.append((area, (x, y, x + bw, y + bh)))
    found.sort(key=lambda kv: -kv[0])
    kept: list[Box] = []
    for _, box in found:
        if all(iou(box, k) <= MAX_IOU for k in kept):
            kept.append(box)
        if len(kept) == limit:
            break
    return kept


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes, in [0, 1]."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
