"""Region proposals for the ``local`` stage: rectangular sub-images worth checking alone.

A copy pasted into a screenshot, a web page, a meme or a collage is usually an
axis-aligned rectangle with a visible edge. Checked whole, such a candidate
spends most of its keypoint budget and feature resolution on the surrounding
interface (text, avatars, icons), and the copy may get too few keypoints to
verify. When the whole candidate gives no verified hit, the local stage checks
the few largest rectangles found here as candidates of their own
(:meth:`monitor.matching.stages.local.LocalStage.match_image`).

Proposals: Canny edges (Canny 1986; OpenCV ``Canny``), dilated by one pixel,
their outer contours, and each contour's bounding box kept when the contour's
convex hull fills at least :data:`MIN_FILL` of it (a rectangle, not a diagonal
stroke) and the box covers between :data:`MIN_AREA` and :data:`MAX_AREA` of the
image. Overlapping boxes (IoU above :data:`MAX_IOU`) keep the larger one.
Uniform boxes (letterbox and pillarbox bars, blank panels) are never proposed; two of
them facing each other propose the gap between them, where a picture fitted into a
slot sits (:func:`between_bars`; measured on the benchmark split, seed 5: AugLy's
screenshot templates pillarbox portrait pictures, and a white-background picture
there had no outline of its own; screenshot recall 0.94 → 0.98). Straight seams
across the whole image (a meme's caption band, a page header) cut it into boxes too
(:func:`split_by_lines`), tried after the outlined ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.imaging.decode import DecodedImage

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
PROPOSAL_SIDE = 640
"""Longest side (pixels) of the grey copy region proposals are searched on."""


@dataclass(frozen=True)
class Region:
    """A rectangular sub-image of a candidate, to be checked as a candidate of its own.

    Attributes:
        image: the sub-image; its ``width``/``height`` are in the candidate's
            original pixels, like any decoded image's.
        offset: ``(x, y)`` of its top-left corner in the candidate's original pixels.
        box: ``(x0, y0, x1, y1)`` in the candidate's original pixels.
    """

    image: DecodedImage
    offset: tuple[float, float]
    box: Box


def regions(image: DecodedImage, limit: int) -> list[Region]:
    """The ``limit`` largest rectangular :func:`proposals` of ``image``, largest first
    (computed once per image: the local and hash checks of sub-images share them)."""
    if limit <= 0:
        return []
    return image.derived(("regions", limit), lambda: _regions(image, limit))


def _regions(image: DecodedImage, limit: int) -> list[Region]:
    work = image.scaled(PROPOSAL_SIDE)
    to_work = image.image.width / work.width  # proposal pixels → working-copy pixels
    back = image.width / image.image.width  # working-copy → original pixels
    out = []
    for x0, y0, x1, y1 in proposals(np.asarray(work.convert("L")), limit):
        box = (round(x0 * to_work), round(y0 * to_work), round(x1 * to_work), round(y1 * to_work))
        box = unbarred(np.asarray(image.image.crop(box)), box)
        crop = image.image.crop(box)
        sub = DecodedImage(image=crop, width=max(1, round(crop.width * back)),
                           height=max(1, round(crop.height * back)), format=image.format,
                           frames=image.frames, sha256=image.sha256, size_bytes=image.size_bytes)
        original = tuple(min(round(v * back), lim) for v, lim in
                         zip(box, (image.width, image.height) * 2, strict=True))
        out.append(Region(sub, (box[0] * back, box[1] * back), original))
    return out


def proposals(gray: np.ndarray, limit: int = 3) -> list[Box]:
    """The ``limit`` largest rectangular regions of ``gray`` ``(H, W) uint8``, largest first.

    Uniform rectangles (:func:`uniform`) are not proposed themselves: a bar holds no
    copy. Two such bars facing each other (:func:`between_bars`) propose the picture
    between them instead: a picture fitted into a slot with letterbox or pillarbox
    bars, on a page of its own colour, has no closed outline of its own.
    Returns boxes in pixels of ``gray``; an empty list for an image without one.
    """
    import cv2

    h, w = gray.shape
    if limit <= 0 or min(h, w) < 2 * MIN_SIDE:
        return []
    canny = cv2.Canny(gray, *CANNY)
    edges = cv2.dilate(canny, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found: list[Box] = []
    bars: list[Box] = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        box = (x, y, x + bw, y + bh)
        if min(bw, bh) >= MIN_SIDE // 2 and uniform(_inside(gray, box)):
            bars.append(box)
        elif _sized(box, w, h) and cv2.contourArea(cv2.convexHull(c)) >= MIN_FILL * bw * bh:
            found.append(box)
    found += [b for b in between_bars(bars) if _sized(b, w, h)]
    kept: list[Box] = []
    _keep(kept, sorted(found, key=_area, reverse=True), limit)
    if len(kept) < limit:  # seams only fill what the outlined boxes leave
        _keep(kept, [b for b in split_by_lines(canny) if not uniform(_inside(gray, b))], limit)
    return kept


def _keep(kept: list[Box], boxes: list[Box], limit: int) -> None:
    """Append to ``kept`` each of ``boxes`` overlapping none of it by more than
    :data:`MAX_IOU`, until it holds ``limit``."""
    for box in boxes:
        if len(kept) == limit:
            return
        if all(iou(box, k) <= MAX_IOU for k in kept):
            kept.append(box)


def split_by_lines(edges: np.ndarray) -> list[Box]:
    """Boxes between straight edges that cross the whole image, largest first, given its
    Canny ``edges`` ``(H, W) uint8`` (not dilated): a meme's caption band, a page header,
    a collage seam. A row (column) cuts the image when it and the next have an edge on
    :data:`LINE_FILL` of their pixels between them (a seam one pixel thick, wobbling by
    one; texture fills no single line so). Each cell of the grid the cuts make is a box
    when it is between :data:`MIN_AREA` and :data:`MAX_SPLIT_AREA` of the image. Tried
    after the outlined proposals (the picture under a caption has no outline of its own),
    and, like them, not when uniform (a flag's stripe). Cost, measured on 150 distractors
    of the benchmark (seed 5): 144 sub-images checked instead of 90, +10-17 % CPU."""
    h, w = edges.shape
    on = edges > 0
    rows = (on[:-1] | on[1:]).mean(axis=1) >= LINE_FILL
    cols = (on[:, :-1] | on[:, 1:]).mean(axis=0) >= LINE_FILL
    ys, xs = _cuts(np.flatnonzero(rows), h), _cuts(np.flatnonzero(cols), w)
    boxes = [(x0, y0, x1, y1) for (y0, y1) in zip(ys[:-1], ys[1:], strict=True)
             for (x0, x1) in zip(xs[:-1], xs[1:], strict=True)]
    return sorted([b for b in boxes if _sized(b, w, h, MAX_SPLIT_AREA)], key=_area, reverse=True)


def _cuts(lines: np.ndarray, n: int) -> list[int]:
    """``[0, ..., n]``: the image's ends and, inside, each run of adjacent cut lines as
    its outer pixels, widened by one each way (the boxes on either side leave the seam
    out)."""
    out = [0]
    for run in np.split(lines, np.flatnonzero(np.diff(lines) > 1) + 1) if len(lines) else []:
        out += [max(0, int(run[0]) - 1), min(n, int(run[-1]) + 3)]
    out.append(n)
    return out


LINE_FILL = 0.8
"""Fraction of a row's (column's) pixels on Canny edges for it to cut the image."""
MAX_SPLIT_AREA = 0.95
"""Largest box :func:`split_by_lines` proposes, as a fraction of the image (a picture
under a caption band keeps 80-90 % of a meme)."""


def _inside(gray: np.ndarray, box: Box) -> np.ndarray:
    """The pixels of ``box`` less :data:`BAR_INSET` along each side."""
    x0, y0, x1, y1 = box
    return gray[y0 + BAR_INSET:y1 - BAR_INSET, x0 + BAR_INSET:x1 - BAR_INSET]


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _sized(box: Box, w: int, h: int, max_area: float = MAX_AREA) -> bool:
    """True when ``box`` is a proposal's size in a ``w`` × ``h`` image: between
    :data:`MIN_AREA` and ``max_area`` of it, no side under :data:`MIN_SIDE`."""
    return MIN_AREA * w * h <= _area(box) <= max_area * w * h \
        and min(box[2] - box[0], box[3] - box[1]) >= MIN_SIDE


BAR_INSET = 3
"""Pixels left out along each side of a contour's box when testing it for a bar: the
dilated edge itself lies on the pixels around the bar."""
BAR_ALIGN = 0.05
"""Two bars face each other when their shared sides differ by at most this fraction of
their length (pillarbox bars: top and bottom; letterbox bars: left and right)."""


def between_bars(bars: list[Box]) -> list[Box]:
    """Boxes between pairs of uniform bars ``bars`` that face each other: left and right
    bars spanning the same rows (pillarbox), or top and bottom bars spanning the same
    columns (letterbox). The box spans the gap between the two bars."""
    out = []
    for a in bars:
        for b in bars:
            if b[0] >= a[2] and _aligned(a[1], a[3], b[1], b[3]):
                out.append((a[2], min(a[1], b[1]), b[0], max(a[3], b[3])))
            if b[1] >= a[3] and _aligned(a[0], a[2], b[0], b[2]):
                out.append((min(a[0], b[0]), a[3], max(a[2], b[2]), b[1]))
    return out


def _aligned(a0: int, a1: int, b0: int, b1: int) -> bool:
    tol = BAR_ALIGN * max(a1 - a0, b1 - b0)
    return abs(a0 - b0) <= tol and abs(a1 - b1) <= tol


def uniform(gray: np.ndarray) -> bool:
    """True when :data:`BAR_FILL` of ``gray`` ``(h, w) uint8`` lies within
    :data:`BAR_TOLERANCE` grey levels of its median (rounded down): a bar or a blank
    panel. The box-wide form of :func:`unbarred`'s per-line test; counted from the
    grey-level histogram, as it runs on every contour of a proposal search."""
    if gray.size == 0:
        return True
    cum = np.bincount(gray.ravel(), minlength=256).cumsum()
    n = int(cum[-1])
    low, high = np.searchsorted(cum, [(n - 1) // 2 + 1, n // 2 + 1])
    mid = (int(low) + int(high)) // 2
    inside = cum[min(255, mid + BAR_TOLERANCE)] - (cum[mid - BAR_TOLERANCE - 1]
                                                     if mid > BAR_TOLERANCE else 0)
    return inside / n >= BAR_FILL


BAR_TOLERANCE = 24
"""Grey-level deviation (of 255) within which a bar's pixels count as one colour."""
BAR_FILL = 0.97
"""Fraction of a line's pixels that must be of its colour (the proposal box may
include a pixel or two of the page around the bar)."""


def unbarred(rgb: np.ndarray, box: Box) -> Box:
    """``box`` without the uniform bars along any of its sides (letterbox and pillarbox
    bars added when a picture was fitted into a slot), given its pixels ``rgb``
    ``(H, W, 3) uint8``. Unlike the all-round trim of :mod:`monitor.imaging.trim`, each side
    has its own colour, so black bars left and right of content touching the top
    and bottom edges go too. From each side go runs of uniform lines of one colour
    each (:func:`_bar_lines`) up to the first wide one, the bar: before it go slivers
    (the page the proposal box took along, a blended line); a picture's own margin,
    in another colour after the bar, stays.
    ``box`` itself when stripping would leave under half.
    """
    grey = rgb.astype(np.int16).mean(axis=2)

    def lines(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (n, len) → flags, colours
        med = np.median(a, axis=1)
        return (np.abs(a - med[:, None]) <= BAR_TOLERANCE).mean(axis=1) >= BAR_FILL, med

    (cu, cm), (ru, rm) = lines(grey.T), lines(grey)
    left, right = _bar_lines(cu, cm), _bar_lines(cu[::-1], cm[::-1])
    top, bottom = _bar_lines(ru, rm), _bar_lines(ru[::-1], rm[::-1])
    h, w = grey.shape
    if (w - left - right) < w / 2 or (h - top - bottom) < h / 2:
        return box
    x0, y0 = box[0], box[1]
    return (x0 + left, y0 + top, x0 + w - right, y0 + h - bottom)


BAR_SLIVER = 0.03
"""A run of uniform lines at most this fraction of the box side is a sliver (pixels of
the page around the slot that a Canny contour's box takes along, a line blended by
resizing) and does not end the strip; a wider run is the bar and does."""


def _bar_lines(flags: np.ndarray, colour: np.ndarray) -> int:
    """How many leading lines are bar: ``flags`` ``(n,) bool`` uniform lines and
    ``colour`` ``(n,) float`` their median grey levels, from the side inwards. A run is
    consecutive uniform lines within :data:`BAR_TOLERANCE` of its first line's colour;
    runs go up to and including the first wider than :data:`BAR_SLIVER`."""
    n = 0
    while n < len(flags) and flags[n]:
        start, c = n, colour[n]
        while n < len(flags) and flags[n] and abs(colour[n] - c) <= BAR_TOLERANCE:
            n += 1
        if n - start > BAR_SLIVER * len(flags):
            break
    return n


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes, in [0, 1]."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
