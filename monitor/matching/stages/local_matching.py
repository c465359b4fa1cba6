"""Descriptor matching for the ``local`` stage: exact 2-NN and Lowe's ratio test.

Shared by homography verification (:mod:`monitor.matching.stages.local`) and the support
count of crop placements (:mod:`monitor.matching.stages.local_crop`).
"""

from __future__ import annotations

import numpy as np

RATIO = 0.8
"""Lowe's ratio test threshold (Lowe 2004, Fig. 11: 0.8 rejects 90 % of false matches)."""


def ratio_matches(q: np.ndarray, r: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(qi, ri)`` of query→ref 2-NN matches passing Lowe's ratio test.

    Descriptors are ``uint8``: 128-d RootSIFT (L2) or 32-byte ORB (Hamming); the
    exact 2-NN comes from a FAISS flat index (SIMD; about 5x a numpy distance
    matrix here). Each ref keypoint is kept once (its best match), so inliers are
    distinct points.
    """
    if len(r) < 2 or not len(q):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    d2, two = _knn2(q, r)
    best, d_best, d_second = two[:, 0], d2[:, 0], d2[:, 1]
    qi = np.flatnonzero((best >= 0) & (d_best < ratio * d_second))
    qi = qi[np.argsort(d_best[qi], kind="stable")]
    _, first = np.unique(best[qi], return_index=True)
    qi = qi[np.sort(first)]
    return qi.astype(np.int64), best[qi].astype(np.int64)


def _knn2(q: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Nq, 2)`` distances (L2, or Hamming bits for 32-byte codes) and ref indices."""
    import faiss

    if q.shape[1] == 32:
        index = faiss.IndexBinaryFlat(256)
        index.add(np.ascontiguousarray(r))
        dist, lab = index.search(np.ascontiguousarray(q), 2)
        return dist.astype(np.float32), lab
    index = faiss.IndexFlatL2(q.shape[1])
    index.add(np.ascontiguousarray(r, np.float32))
    dist, lab = index.search(np.ascontiguousarray(q, np.float32), 2)
    return np.sqrt(np.maximum(dist, 0.0)), lab
