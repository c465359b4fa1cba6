"""Structure agreement: verifies a descriptor neighbour under filters that destroy gradients.

Heavy photo-editor filters (edge detection, emboss, inversion, posterisation,
pixelation, oil paint) keep where the picture's edges are but not what SIFT and pHash
read; SSCD still ranks the original first but with similarities as low as unrelated
images' (issue 21: cosines 0.14-0.43). This check compares the *layout of structure*
instead: the gallery image's gradient magnitude, blurred and reduced to
:data:`SIDE` × :data:`SIDE`, correlated (zero-mean cosine) with two views of the
candidate made the same way:

1. its own gradient magnitude (a copy under colour or tone filters, posterised,
   pixelated, oil-painted, inverted);
2. its intensity (an edge map: Sobel, Laplacian, neon, pencil sketch, emboss); the
   absolute value of the correlation covers dark lines on white as well.

The agreement is the largest absolute correlation, in [0, 1]. It is computed only for
the gallery images the descriptor proposes (bounded by ``descriptor.top_k``) and
enters the calibrated confidence beside the SSCD similarity; alone it decides
nothing (plain clip art on white agrees with much other clip art).

Measured (bench/RESULTS.md, gallery 100, seed 5): heavy-filter recall at FPR 1e-3 from
0.34 to 0.45 when added to the confidence fit.
"""

from __future__ import annotations

import cv2
import numpy as np

from monitor.imaging.decode import DecodedImage

SIDE = 64
"""Side (pixels) of the compared maps: coarse enough that a re-drawn edge one or two
pixels off still overlaps, fine enough to tell layouts apart."""

GRADIENT_SIGMA, POOL_SIGMA = 1.0, 2.0
"""Gaussian σ (pixels at 2 × SIDE) before the Sobel gradient, and of the blur that
pools the map before reduction to SIDE."""


def _grey(image: DecodedImage) -> np.ndarray:
    small = image.scaled(4 * SIDE).convert("L").resize((2 * SIDE, 2 * SIDE))
    return np.asarray(small, np.float32)


def _gradient(grey: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(grey, (0, 0), GRADIENT_SIGMA)
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def _pooled(x: np.ndarray) -> np.ndarray:
    x = cv2.resize(cv2.GaussianBlur(x, (0, 0), POOL_SIGMA), (SIDE, SIDE),
                   interpolation=cv2.INTER_AREA).ravel()
    x = x - x.mean()
    n = float(np.linalg.norm(x))
    return (x / n if n > 1e-6 else x).astype(np.float32)


def gallery_signature(image: DecodedImage) -> np.ndarray:
    """The gallery side: pooled gradient magnitude, ``(SIDE * SIDE,) float16``, zero-mean,
    unit norm (all zeros for a flat image)."""
    return _pooled(_gradient(_grey(image))).astype(np.float16)


def candidate_signatures(image: DecodedImage) -> np.ndarray:
    """The candidate's two views (module docstring), ``(2, SIDE * SIDE) float32``,
    each zero-mean and unit norm; cached on the image."""
    def make() -> np.ndarray:
        grey = _grey(image)
        return np.stack([_pooled(_gradient(grey)), _pooled(grey)])

    return image.derived("structure", make)


def agreement(candidate: np.ndarray, gallery: np.ndarray) -> float:
    """Largest absolute correlation in [0, 1] between any candidate view ``(2, D)`` and
    a gallery signature ``(D,)``."""
    return float(np.abs(candidate @ gallery.astype(np.float32)).max())
