"""Homography estimation and degeneracy checks for the ``local`` stage.

The homography maps gallery feature-image pixels to candidate feature-image
pixels. It is fitted with MAGSAC++ (Barath et al., CVPR 2020; OpenCV
``cv2.USAC_MAGSAC``), a robust successor of RANSAC (Fischler & Bolles 1981).
A fit is rejected as degenerate (a chance alignment of a few similar corners,
not a copy) when the projected gallery frame is not a convex, orientation-
preserving quadrilateral of sane size and perspective, or when the inliers
cover too small a part of the gallery image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REPROJ_PX = 5.0
"""MAGSAC++ maximum reprojection error in feature-image pixels."""

MIN_SCALE, MAX_SCALE = 1 / 12, 12.0
"""Bounds of the linear scale factor sqrt(|det A|) of the affine part (gallery → candidate)."""

MAX_ANISOTROPY = 4.0
"""Largest ratio of the two singular values of the affine part (shear / squash)."""

MAX_PERSPECTIVE = 3.0
"""Largest ratio of local area scale between two projected gallery corners."""

MIN_SPREAD = 0.04
"""Inliers' bounding box must cover this fraction of the gallery image's area."""

MIN_VISIBLE = 0.25
"""Fraction of the projected quad's area that must lie on the candidate (:func:`visible`)."""


@dataclass(frozen=True)
class Geometry:
    """A verified fit: ``homography`` ``(3, 3) float64`` gallery → candidate feature pixels,
    ``inliers`` count, ``quad`` ``(4, 2) float64`` projected gallery corners
    (top-left, top-right, bottom-right, bottom-left) in candidate feature pixels."""

    homography: np.ndarray
    inliers: int
    quad: np.ndarray
    support: int = 0


def corners(size: tuple[int, int]) -> np.ndarray:
    """``(4, 2) float64`` corners of a ``(width, height)`` image, clockwise from top-left."""
    w, h = size
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)


def pull_back(image: np.ndarray, homography: np.ndarray, size: tuple[int, int]
              ) -> tuple[np.ndarray, np.ndarray]:
    """``image`` ``(H, W[, C]) uint8`` resampled into a frame of ``size`` = ``(w, h)``
    pixels, where ``homography`` ``(3, 3)`` maps frame pixels → ``image`` pixels (OpenCV
    ``warpPerspective`` with ``WARP_INVERSE_MAP``): ``(warped, cover)``, ``cover`` the
    ``(h, w) bool`` frame pixels that ``image`` reaches."""
    import cv2

    flags = cv2.INTER_AREA | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(np.ascontiguousarray(image), homography, size, flags=flags)
    cover = cv2.warpPerspective(np.full(image.shape[:2], 255, np.uint8), homography, size,
                                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    return warped, cover > 0


def project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply homography ``h`` to ``(N, 2)`` points; ``(N, 2) float64``."""
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return p[:, :2] / p[:, 2:3]


def fit(src: np.ndarray, dst: np.ndarray, src_size: tuple[int, int],
        dst_size: tuple[int, int], src_all: np.ndarray) -> Geometry | None:
    """Robust homography from ``src`` ``(N, 2)`` to ``dst`` ``(N, 2)`` float32 points.

    ``src_all`` ``(M, 2)`` holds every gallery keypoint, to count the support.

    The homography comes from MAGSAC++; when it is missing or fails :func:`plausible`
    (few inliers along one line, e.g. a crop of parallel strokes, let it tilt the frame
    into a sliver), a similarity (rotation, uniform scale, translation; OpenCV
    ``estimateAffinePartial2D`` with RANSAC, same reprojection threshold) is fitted
    instead: the transform crops, pads, rescales and small rotations make, with 4
    degrees of freedom instead of 8. Returns None when fewer than 4 points are given or
    neither model is plausible.
    """
    import cv2

    if len(src) < 4:
        return None
    h, mask = cv2.findHomography(src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2),
                                 cv2.USAC_MAGSAC, REPROJ_PX, maxIters=2000, confidence=0.999)
    geo = _checked(h, mask, src, src_size, dst_size, src_all)
    if geo is not None:
        return geo
    a, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                          ransacReprojThreshold=REPROJ_PX, maxIters=2000,
                                          confidence=0.999)
    h = None if a is None else np.vstack([a, [0.0, 0.0, 1.0]])
    return _checked(h, mask, src, src_size, dst_size, src_all)


def _checked(h: np.ndarray | None, mask: np.ndarray | None, src: np.ndarray,
             src_size: tuple[int, int], dst_size: tuple[int, int],
             src_all: np.ndarray) -> Geometry | None:
    """The fit ``h`` with inlier ``mask`` as a :class:`Geometry`, or None if degenerate."""
    if h is None or mask is None or not np.all(np.isfinite(h)):
        return None
    inl = mask.reshape(-1).astype(bool)
    quad = project(h, corners(src_size))
    if not plausible(h, quad, src[inl], src_size, dst_size):
        return None
    return Geometry(h, int(inl.sum()), quad, support(h, src_all, dst_size))


def support(h: np.ndarray, pts: np.ndarray, dst_size: tuple[int, int]) -> int:
    """How many of ``pts`` ``(M, 2)`` (gallery keypoints) project inside the candidate."""
    p = project(h, pts.astype(np.float64))
    inside = (p[:, 0] >= 0) & (p[:, 1] >= 0) & (p[:, 0] < dst_size[0]) & (p[:, 1] < dst_size[1])
    return int(inside.sum())


def _convex(quad: np.ndarray) -> bool:
    """True when the quad is convex with positive (clockwise-in-image) orientation."""
    d = np.roll(quad, -1, axis=0) - quad
    cross = d[:, 0] * np.roll(d, -1, axis=0)[:, 1] - d[:, 1] * np.roll(d, -1, axis=0)[:, 0]
    return bool(np.all(cross > 0))


def _area(quad: np.ndarray) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def plausible(h: np.ndarray, quad: np.ndarray, inliers: np.ndarray,
              src_size: tuple[int, int], dst_size: tuple[int, int]) -> bool:
    """Degeneracy checks of a gallery → candidate homography (see module constants)."""
    if len(inliers) < 4 or not np.all(np.isfinite(quad)) or not _convex(quad):
        return False
    hn = h / h[2, 2]
    a = hn[:2, :2]
    sv = np.linalg.svd(a, compute_uv=False)
    scale = float(np.sqrt(abs(np.linalg.det(a))))
    if not (MIN_SCALE <= scale <= MAX_SCALE) or sv[0] > MAX_ANISOTROPY * max(sv[1], 1e-9):
        return False
    w = corners(src_size) @ hn[2, :2] + 1.0
    if np.any(w <= 0):
        return False
    jac = abs(np.linalg.det(hn)) / w ** 3
    if jac.max() > MAX_PERSPECTIVE * jac.min():
        return False
    span = inliers.max(axis=0) - inliers.min(axis=0)
    if span[0] * span[1] < MIN_SPREAD * src_size[0] * src_size[1]:
        return False
    return visible(quad, dst_size) >= MIN_VISIBLE


def visible(quad: np.ndarray, dst_size: tuple[int, int]) -> float:
    """Fraction in [0, 1] of the convex ``quad`` ``(4, 2)``'s area that lies on the
    ``(width, height)`` candidate (OpenCV ``intersectConvexConvex``); a turned copy's
    quad is measured itself, not its bounding box, whose corners are off the copy."""
    import cv2

    area = _area(quad)
    if area <= 0:
        return 0.0
    frame = corners(dst_size).astype(np.float32)
    inter, _ = cv2.intersectConvexConvex(quad.astype(np.float32), frame)
    return float(min(1.0, max(0.0, inter) / area))


def box(quad: np.ndarray, original_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixel box ``(x0, y0, x1, y1)`` of ``quad`` ``(4, 2)``, clipped to the candidate."""
    w, h = original_size
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    return int(max(0, x0)), int(max(0, y0)), int(min(w, x1)), int(min(h, y1))


def stretch(size: tuple[float, float], ref_size: tuple[float, float]) -> float:
    """How much an image of ``size`` = ``(w, h)`` must be stretched along one axis to take the
    shape of ``ref_size`` (both in any pixels), under the better of no turn and a quarter
    turn: ``min(max(a / g, g / a), max(a * g, 1 / (a * g)))`` for aspect ratios ``a`` and
    ``g`` (width / height). 1.0 for the same shape."""
    a = size[0] / max(size[1], 1e-9)
    g = ref_size[0] / max(ref_size[1], 1e-9)
    return float(min(max(a / g, g / a), max(a * g, 1 / (a * g))))
