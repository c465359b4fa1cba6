"""One calibrated confidence per match, from all of its evidence.

Each stage scores its own hit (:class:`~monitor.types.Hit`), but the evidence that
decides a copy is often two weak hits that agree: a pHash 6 bits off whose dense check
agrees, a homography of 7 inliers. :func:`confidence` is a logistic model over the
features of *all* of a match's hits (:data:`FEATURES`), fitted on the copy-detection
benchmark so that one threshold on it sweeps the product the way DISC21 sweeps a
detector's score (Douze et al. 2021, "The 2021 Image Similarity Dataset and Challenge").

The coefficients come from ``python -m bench.calibrate`` (``bench/RESULTS.md`` gives
the command, the split it was fitted on and the splits it was tested on). CLIP
evidence is not in the fit (no weights on the benchmark machine): a CLIP hit's own
score (:meth:`~monitor.matching.stages.clip.ClipStage.score`) stands in where it is higher.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from monitor.types import Hit, Match

FEATURES = ("hash_near", "hash_closeness", "hash_agreement", "hash_agreement_high",
            "hash_region", "inliers_log", "inliers_strong", "homography_agreement",
            "homography_agreement_high", "placement", "placement_high", "hash_and_inliers")
"""Names of :func:`features`' columns, in order."""

NEAR_BITS, CLOSE_BITS = 3, 16
"""pHash distances (bits of 64): within ``NEAR_BITS`` a near-duplicate (the default
rule's ``hash_max_distance``), and closeness falls linearly to 0 at ``CLOSE_BITS``
(``hash.region_max_distance``, the farthest hit the engine keeps)."""

STRONG_INLIERS, INLIERS_LOG_CAP = 10, 6.0
"""RANSAC inliers: ``STRONG_INLIERS`` is the default rule's ``local_min_inliers``;
``log2(1 + inliers)`` is divided by ``INLIERS_LOG_CAP`` and capped at 1 (63 inliers)."""

HIGH_AGREEMENT = 0.8
"""Dense agreements above this get a second, steeper term (a hinge): on the benchmark
unrelated plain graphics agree up to about 0.85, copies at 0.88 and more."""

INTERCEPT = -3.900
COEFFICIENTS = (2.667, 2.103, 1.673, 3.139, 0.705, 2.234, 2.408, 2.689, 2.880, 2.429, 2.429,
                0.288)
"""Logistic model, one coefficient per :data:`FEATURES` entry: fitted by
``python -m bench.calibrate --fit ev-5.jsonl`` on benchmark gallery 300, seed 5, without
the distractor-only corpus (3,611 queries; 3,136 matches, 2,647 of them copies;
scikit-learn ``LogisticRegression``, C = 1). Refitted with it (6,611 queries), held-out
swept recall moves by under 0.002, so these stay."""


def _hinge(value: float) -> float:
    return max(0.0, value - HIGH_AGREEMENT) / (1.0 - HIGH_AGREEMENT)


def features(hits: Sequence[Hit]) -> np.ndarray:
    """The evidence of one match's hits as ``(len(FEATURES),) float64``, each in [0, 1].

    Per stage the strongest hit counts: the nearest pHash (its dense agreement, and
    whether it came from a sub-image), the homography with most inliers (its warp's
    dense agreement) and the best crop placement (local hit without inliers).
    """
    hashed = [h for h in hits if h.distance is not None]
    homog = [h for h in hits if h.stage == "local" and h.inliers is not None]
    placed = [h for h in hits if h.stage == "local" and h.inliers is None]
    out = np.zeros(len(FEATURES))
    if hashed:
        best = min(hashed, key=lambda h: (h.distance, -(h.agreement or 0.0)))
        agree = best.agreement or 0.0
        out[0:5] = (best.distance <= NEAR_BITS, max(0.0, 1.0 - best.distance / CLOSE_BITS),
                    agree, _hinge(agree), best.region is not None)
    if homog:
        best = max(homog, key=lambda h: (h.inliers, h.agreement or 0.0))
        agree = best.agreement or 0.0
        out[5:9] = (min(1.0, math.log2(1 + best.inliers) / INLIERS_LOG_CAP),
                    best.inliers >= STRONG_INLIERS, agree, _hinge(agree))
    if placed:
        agree = max(h.agreement or 0.0 for h in placed)
        out[9:11] = (agree, _hinge(agree))
    out[11] = out[1] * out[5]
    return out


def confidence(hits: Sequence[Hit], intercept: float = INTERCEPT,
               coefficients: Sequence[float] = COEFFICIENTS) -> float:
    """Confidence in [0, 1] that the hits' candidate copies their gallery image.

    ``sigmoid(intercept + coefficients · features(hits))`` (default: the shipped
    :data:`INTERCEPT` and :data:`COEFFICIENTS`; ``bench.calibrate`` passes a refit), or a
    CLIP hit's score where higher (see the module docstring). A probability on the
    benchmark's matches, most of which are copies; elsewhere a ranking whose operating
    points ``bench/RESULTS.md`` measures (0.25 flags about as the default rules do).
    """
    z = intercept + float(np.dot(coefficients, features(hits)))
    fitted = 1.0 / (1.0 + math.exp(-z))
    clip = [h.score for h in hits if h.stage == "clip"]
    return max([fitted, *clip])


def merge_hits(hits: Iterable[Hit]) -> list[Match]:
    """Group hits by gallery id into matches, most confident first (the best-scoring
    hit names the stage; the score is :func:`~monitor.matching.confidence.confidence`)."""
    by_id: dict[int, list[Hit]] = {}
    for hit in hits:
        by_id.setdefault(hit.gallery_id, []).append(hit)
    matches = []
    for gid, group in by_id.items():
        best = max(group, key=lambda h: h.score)
        matches.append(Match(gallery_id=gid, stage=best.stage, score=confidence(group),
                             hits=tuple(sorted(group, key=lambda h: -h.score))))
    return sorted(matches, key=lambda m: -m.score)
