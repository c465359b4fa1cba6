"""Keypoint extraction for the ``local`` stage: RootSIFT or ORB on a normalised grey image.

RootSIFT (Arandjelović & Zisserman, CVPR 2012): L1-normalise each SIFT
descriptor (Lowe, IJCV 2004), take the element-wise square root; Euclidean
distance between RootSIFT vectors is then the Hellinger kernel distance
between the SIFT histograms. Descriptors are stored as ``uint8`` (value × 512,
clipped; RootSIFT components lie in [0, 0.5] in practice) to quarter memory.

Mirrors: a horizontal flip of the image maps the SIFT descriptor of a keypoint
onto a *permutation* of the descriptor of the mirrored keypoint: the 4 spatial
rows of the 4×4×8 histogram reverse and orientation bin ``o`` becomes
``(8 - o) % 8``. Checked on OpenCV 4.14 SIFT: median L2 distance 32 between
the permuted descriptor and the descriptor computed on the flipped image, vs
443 unpermuted (same keypoint positions). So a candidate's mirrored view costs
no second extraction. ORB has no such symmetry; it is re-extracted on the flip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROOTSIFT_SCALE = 512.0
"""RootSIFT components are multiplied by this and stored as uint8 (clipped to 255)."""

MIN_SIDE = 256
"""Images whose longest side is smaller are upscaled to it (pixels): tiny clip art
otherwise yields too few keypoints to verify."""

FEW_KEYPOINTS = 200
"""Below this many SIFT keypoints an image is re-detected with :data:`RELAXED`."""

RELAXED = {"contrastThreshold": 0.005, "edgeThreshold": 30}
"""SIFT thresholds for keypoint-poor images (OpenCV defaults 0.04 and 10). A higher
``edgeThreshold`` keeps corner-like points along the long straight edges of flat
graphics that Lowe's edge test (Lowe 2004, §4.1) rejects. Measured on the 10 gallery
images of the benchmark split with the fewest keypoints (0-26 at the default
thresholds; flags, pictograms, a wallpaper): their 90 edited copies found 20 → 45."""

SIFT_MIRROR = np.arange(128).reshape(4, 4, 8)[::-1][:, :, (8 - np.arange(8)) % 8].reshape(-1)
"""Index permutation of a 128-d OpenCV SIFT descriptor under a horizontal flip."""


@dataclass(frozen=True, eq=False)
class Features:
    """Local features of one image view.

    Attributes:
        keypoints: ``(N, 2) float32`` keypoint ``(x, y)`` in pixels of the feature image.
        descriptors: ``(N, 128) uint8`` RootSIFT × :data:`ROOTSIFT_SCALE` (SIFT), or
            ``(N, 32) uint8`` packed 256-bit ORB (rBRIEF) descriptors.
        size: ``(width, height)`` of the feature image in pixels.
        scale: original pixels per feature-image pixel (``original = feature * scale``).
        mirror: for candidates, the same image flipped left-right (keypoints in the
            flipped frame); None for gallery views.
        offset: ``(x, y)`` in original pixels of the feature image's top-left corner
            (non-zero when uniform borders were trimmed): ``original = offset + feature * scale``.
        image: ``(h, w) uint8`` grey pixels for the dense check: the feature image itself
            for candidates, a small thumbnail of it for gallery views (see local_dense).
        colour: ``(h, w, 3) uint8`` RGB the size of ``image`` (hue check,
            :mod:`~monitor.matching.stages.local_hue`), or None.
        original: ``(width, height)`` of the whole original image in pixels (gallery
            views: the protected image's size, for :mod:`monitor.matching.overlap`), or None.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]
    scale: float
    mirror: Features | None = None
    offset: tuple[float, float] = (0.0, 0.0)
    image: np.ndarray | None = None
    colour: np.ndarray | None = None
    original: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.keypoints)

    def frame(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` of the feature image in original pixels: ``offset`` to
        ``offset + size * scale`` (the trimmed content, or the region proposal it was
        computed on)."""
        ox, oy = self.offset
        return ox, oy, ox + self.size[0] * self.scale, oy + self.size[1] * self.scale


def feature_gray(gray: np.ndarray, side: int) -> np.ndarray:
    """``(H, W) uint8`` grey image brought to a longest side in [MIN_SIDE, side] and
    min-max contrast-stretched (flat clip art in pale colours keeps its edges)."""
    import cv2

    h, w = gray.shape
    longest = max(h, w)
    target = min(max(longest, MIN_SIDE), side)
    if target != longest:
        f = target / longest
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
        gray = cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))),
                          interpolation=interp)
    return cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX)


def extract(gray: np.ndarray, detector: str, n: int,
            contrast: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(N, 2) float32`` and descriptors ``(N, D) uint8`` of ``gray``.

    ``contrast`` is SIFT's ``contrastThreshold`` (Lowe's 0.03 on [0, 1] intensities,
    OpenCV default 0.04); lower keeps the weak corners of flat clip art. When that
    finds fewer than :data:`FEW_KEYPOINTS` (simple graphics: flags, pictograms), SIFT
    runs again with :data:`RELAXED` thresholds; images with enough keypoints are
    unaffected.
    """
    import cv2

    if detector == "orb":
        det = cv2.ORB_create(nfeatures=n, fastThreshold=10, edgeThreshold=15, patchSize=15)
        kps, desc = det.detectAndCompute(gray, None)
    else:
        kps, desc = cv2.SIFT_create(nfeatures=n, contrastThreshold=contrast).detectAndCompute(
            gray, None)
        if len(kps) < min(FEW_KEYPOINTS, n):
            kps, desc = cv2.SIFT_create(nfeatures=n, **RELAXED).detectAndCompute(gray, None)
    dim = 32 if detector == "orb" else 128
    if desc is None or not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, dim), np.uint8)
    pts = np.array([k.pt for k in kps], np.float32)
    if detector == "orb":
        return pts, desc.astype(np.uint8)
    return pts, rootsift(desc)


def rootsift(desc: np.ndarray) -> np.ndarray:
    """``(N, 128) float32`` SIFT → ``(N, 128) uint8`` RootSIFT × :data:`ROOTSIFT_SCALE`."""
    d = desc.astype(np.float32)
    d /= np.maximum(d.sum(axis=1, keepdims=True), 1e-7)
    return np.clip(np.sqrt(d) * ROOTSIFT_SCALE + 0.5, 0, 255).astype(np.uint8)


def mirror_sift(f: Features) -> Features:
    """The view of ``f``'s image flipped left-right, by descriptor permutation."""
    pts = f.keypoints.copy()
    pts[:, 0] = f.size[0] - 1 - pts[:, 0]
    image = None if f.image is None else np.ascontiguousarray(f.image[:, ::-1])
    colour = None if f.colour is None else np.ascontiguousarray(f.colour[:, ::-1])
    return Features(pts, np.ascontiguousarray(f.descriptors[:, SIFT_MIRROR]), f.size, f.scale,
                    offset=f.offset, image=image, colour=colour)
