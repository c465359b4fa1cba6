"""Dense agreement: does the candidate, warped by the verified homography, *look like*
the gallery image cell by cell, or does it only share a few parts (a template, a frame)?

Keypoint inliers say that some structures line up. Series siblings in real
collections (one icon template with different emblems, one card deck design,
one warning-sign frame) line up too. After the homography is found, the
candidate is warped into the frame of a small grey thumbnail of the gallery
image and both are compared on a grid: the *agreement* is the fraction of
textured gallery cells (standard deviation above :data:`MIN_CELL_STD`) whose
zero-mean normalised cross-correlation (NCC, invariant to brightness and
contrast changes, so colour filters do not matter) with the warped candidate
exceeds :data:`CELL_NCC` (at the best of the offsets of up to :data:`SHIFT`
pixels, so thin line art survives a fit a pixel off). Cells the candidate does not
cover (crops) are not counted. A copy with a text or emoji overlay keeps most cells; a sibling that
shares only a frame or template does not.

:func:`aligned_agreement` asks the same of a pHash hit, where no keypoints gave a
homography (simple graphics: flags, icons): the candidate's trimmed content is
stretched onto the gallery thumbnail under each of the 8 dihedral transforms, as
the hash matched it, and the best agreement is kept. On the benchmark split
(``bench.accuracy --gallery 100 --distractors 1000 --seed 5``), 73 % of the 498
true pHash hits within 12 bits scored 0.8 or more (50 % of the 201 at 4-12 bits);
the 67 hits on the wrong gallery image scored at most 0.55.
"""

from __future__ import annotations

import numpy as np

from monitor.matching.stages.local_geometry import pull_back
from monitor.matching.stages.local_hue import hue_consistent

THUMB_SIDE = 96
"""Longest side (pixels) of the grey gallery thumbnail kept for dense checks."""
GRID = 8
"""Cells per side of the comparison grid."""
MIN_CELL_STD = 6.0
"""Grey-level standard deviation (of 255) below which a cell is flat, so uninformative."""
CELL_NCC = 0.55
"""NCC above which a cell agrees. 0.5 when cells were compared at one offset; with
:data:`SHIFT` the best of 9 offsets is taken, which lifts unrelated cells too. Measured
on every homography the local stage verified on two benchmark splits (seeds 5 and 11,
1,673 right and 41 wrong gallery images): at 0.55 the same right pairs pass the 0.6
floor as at 0.5, and a KDE icon sharing only its page template with a gallery icon
(0.61 at 0.5) no longer does."""
SHIFT = 1
"""Thumbnail pixels a cell may shift against the warped candidate: its NCC is the best
over the (2·SHIFT + 1)² offsets (1 px of 96 is about 1 % of the image, what a RANSAC
fit and thin line art at thumbnail scale leave)."""
MIN_COVER = 0.8
"""Fraction of a cell the warped candidate must cover for the cell to count."""


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """``(h, w) uint8`` grey thumbnail, longest side :data:`THUMB_SIDE`, of a feature image."""
    import cv2

    h, w = gray.shape
    f = THUMB_SIDE / max(h, w)
    size = (max(8, round(w * f)), max(8, round(h * f)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def agreement(thumb: np.ndarray, ref_size: tuple[int, int], candidate: np.ndarray,
              homography: np.ndarray) -> float | None:
    """Fraction in [0, 1] of textured, covered gallery cells that agree with the candidate
    (:func:`cell_votes`), or None when no cell is both textured and covered."""
    agree, counted = cell_votes(thumb, ref_size, candidate, homography)
    return agree / counted if counted else None


def cell_votes(thumb: np.ndarray, ref_size: tuple[int, int], candidate: np.ndarray,
               homography: np.ndarray) -> tuple[int, int]:
    """``(agreeing, counted)``: textured, covered gallery cells, and those that agree.

    Args:
        thumb: ``(h, w) uint8`` gallery thumbnail (:func:`thumbnail`).
        ref_size: ``(width, height)`` of the gallery feature image, pixels.
        candidate: ``(H, W) uint8`` candidate feature image (the view that matched).
        homography: ``(3, 3)`` gallery feature pixels → candidate feature pixels.

    A cell counts when it is textured (std above :data:`MIN_CELL_STD`) and the warped
    candidate covers :data:`MIN_COVER` of it; it agrees when their NCC, at the best of
    the offsets of up to :data:`SHIFT` thumbnail pixels, exceeds :data:`CELL_NCC`. Per-cell
    sums come from ``np.add.reduceat`` over the grid, for the 9 offsets stacked in one
    array (measured on 100 warped skimage photos, 96-px thumbnails: 1.57 ms a pair against
    2.93 ms with a loop over the offsets, same votes; 4.4 ms for the older per-cell loop).
    """
    import cv2

    th, tw = thumb.shape
    s = np.diag([ref_size[0] / tw, ref_size[1] / th, 1.0])
    m = homography @ s  # thumbnail pixels → candidate pixels
    warped, cover = pull_back(candidate, m, (tw, th))
    a = cv2.GaussianBlur(thumb.astype(np.float32), (3, 3), 0.8).astype(np.float64)
    b = cv2.GaussianBlur(warped.astype(np.float32), (3, 3), 0.8).astype(np.float64)
    grid = _Grid(th, tw)
    n, sa, saa = grid.size, grid.sums(a), grid.sums(a * a)
    var_a = np.maximum(saa - sa * sa / n, 0.0)
    counted = grid.ok & (np.sqrt(var_a / n) >= MIN_CELL_STD) \
        & (grid.sums(cover.astype(np.float64)) >= MIN_COVER * n)
    padded = np.pad(b, SHIFT, mode="edge")  # every offset at once: (offsets, th, tw)
    shifted = np.lib.stride_tricks.sliding_window_view(padded, (th, tw)).reshape(-1, th, tw)
    sb, sbb, sab = grid.sums(shifted), grid.sums(shifted * shifted), grid.sums(a * shifted)
    var_b = np.maximum(sbb - sb * sb / n, 0.0)
    denom = np.sqrt(var_a * var_b)
    ncc = np.where(denom > 0, (sab - sa * sb / n) / np.where(denom > 0, denom, 1), -1)
    best = ncc.max(axis=0)
    return int((counted & (best > CELL_NCC)).sum()), int(counted.sum())


Colours = tuple[np.ndarray | None, np.ndarray] | None
"""``(gallery colour thumbnail, candidate RGB view)`` for the hue check, or None."""


def _hues_kept(colours: Colours, k: int, homography: np.ndarray,
               ref_size: tuple[int, int]) -> bool:
    """:func:`~monitor.matching.stages.local_hue.hue_consistent` of the candidate's colour view
    under dihedral transform ``k`` (as in :func:`aligned_agreement`); True without colours."""
    if colours is None:
        return True
    return hue_consistent(colours[0], dihedral(colours[1], k), homography, ref_size)


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """``image`` ``(H, W[, C])`` under dihedral transform ``k`` in 0..7: ``k % 4``
    quarter turns (``np.rot90``), then mirrored left-right when ``k >= 4``; contiguous."""
    view = np.rot90(image, k % 4)
    return np.ascontiguousarray(view[:, ::-1] if k >= 4 else view)


class _Grid:
    """The :data:`GRID` × :data:`GRID` cells of an ``(h, w)`` image (``np.array_split``
    sizes) and per-cell sums of arrays over them."""

    def __init__(self, h: int, w: int) -> None:
        self.rows = [int(c[0]) for c in np.array_split(np.arange(h), GRID) if len(c)]
        self.cols = [int(c[0]) for c in np.array_split(np.arange(w), GRID) if len(c)]
        heights = np.diff(self.rows + [h])
        widths = np.diff(self.cols + [w])
        self.size = (heights[:, None] * widths[None, :]).astype(np.float64)
        """``(rows, cols) float64``: pixels per cell."""
        self.ok = (heights[:, None] >= 2) & (widths[None, :] >= 2)

    def sums(self, x: np.ndarray) -> np.ndarray:
        """``(..., rows, cols) float64`` sums of ``x`` ``(..., h, w)`` over each cell."""
        return np.add.reduceat(np.add.reduceat(x, self.rows, axis=-2), self.cols, axis=-1)


def aligned_agreement(thumb: np.ndarray, ref_size: tuple[int, int], candidate: np.ndarray,
                      min_cells: int = 1, colours: Colours = None) -> float | None:
    """Best :func:`agreement` of ``candidate`` ``(H, W) uint8`` stretched onto the whole
    gallery thumbnail, over the 8 dihedral transforms (D4: 4 turns × mirror).

    ``candidate`` is the trimmed content of the candidate (any size); ``thumb`` and
    ``ref_size`` as in :func:`agreement`. Only transforms judged on at least
    ``min_cells`` textured cells count, and with ``colours`` (the gallery colour
    thumbnail and an RGB view the size of ``candidate``) only those that keep its hues
    (:func:`~monitor.matching.stages.local_hue.hue_consistent`). None when no transform does.
    """
    best = None
    for k in range(8):
        view = dihedral(candidate, k)
        stretch = np.diag([view.shape[1] / ref_size[0], view.shape[0] / ref_size[1], 1.0])
        agree, counted = cell_votes(thumb, ref_size, view, stretch)
        if counted >= max(1, min_cells) and (best is None or agree / counted > best) \
                and _hues_kept(colours, k, stretch, ref_size):
            best = agree / counted
    return best


CROP_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Side of a cropped copy as a fraction of the gallery image's width or height tried by
:func:`place_crop` (a crop keeping 50-90 % of the area keeps at least ~0.5 of a side)."""
CROP_MIN_CELLS = 16
"""Textured cells (of 64) a crop placement must be judged on: fewer say too little. Was 12
(on the benchmark split, seed 5, 1 in 400 distractors reached 0.9 on 12 or more, several
on fewer); 16 since sub-images' pHashes are searched out to 16 bits: a star field's
sub-image placed in another at 1.0 on 12 cells (seed 5 of the current split: 1
distractor less flagged, 1 crop of a photo of 900 positives less found)."""


def place_crop(thumb: np.ndarray, ref_size: tuple[int, int], candidate: np.ndarray,
               min_cells: int = CROP_MIN_CELLS, colours: Colours = None
               ) -> tuple[float, np.ndarray] | None:
    """Where ``candidate`` sits in the gallery image if it is a crop of it, and how well
    it agrees there: ``(agreement, homography)`` or None.

    The candidate (``(H, W) uint8`` feature image, trimmed) is scaled so its width (then
    its height) spans each of :data:`CROP_FRACTIONS` of the thumbnail's, placed where
    OpenCV ``matchTemplate`` (``TM_CCOEFF_NORMED``) correlates best, and each placement
    is judged by :func:`cell_votes`; the best one on at least ``min_cells`` cells (default
    :data:`CROP_MIN_CELLS`) and keeping the hues (``colours`` as in
    :func:`aligned_agreement`) wins. ``homography`` ``(3, 3)`` maps gallery feature pixels to
    candidate pixels (scale and translation), as :func:`agreement` takes it. For copies
    too plain for keypoints (flags, pictograms, flat clip art) that are crops of a gallery
    image; the scale grid is coarse (a crop between two fractions agrees less on fine
    texture).
    """
    import cv2

    th, tw = thumb.shape
    ch, cw = candidate.shape
    a = cv2.GaussianBlur(thumb, (3, 3), 0.8)
    best: tuple[float, np.ndarray] | None = None
    for k in sorted({round(f * s, 6) for f in CROP_FRACTIONS for s in (tw / cw, th / ch)}):
        w, h = round(cw * k), round(ch * k)
        if not (8 <= w <= tw and 8 <= h <= th):
            continue
        small = cv2.GaussianBlur(cv2.resize(candidate, (w, h), interpolation=cv2.INTER_AREA),
                                 (3, 3), 0.8)
        x, y = 0, 0
        if (w, h) != (tw, th):
            _, _, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(a, small, cv2.TM_CCOEFF_NORMED))
        k = w / cw
        hom = np.array([[tw / ref_size[0] / k, 0, -x / k], [0, th / ref_size[1] / k, -y / k],
                        [0, 0, 1]])
        agree, counted = cell_votes(thumb, ref_size, candidate, hom)
        if counted >= min_cells and (best is None or agree / counted > best[0]) \
                and _hues_kept(colours, 0, hom, ref_size):
            best = (agree / counted, hom)
    return best
