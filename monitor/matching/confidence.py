"""One calibrated confidence per match, from all of its evidence.

Each stage scores its own hit (:class:`~monitor.types.Hit`), but the evidence that
decides a copy is often two weak hits that agree: a pHash 6 bits off whose dense check
agrees, a homography of 7 inliers. :func:`confidence` is a logistic model over the
features of *all* of a match's hits (:data:`FEATURES`), fitted on the copy-detection
benchmark so that one threshold on it sweeps the product the way DISC21 sweeps a
detector's score (Douze et al. 2021, "The 2021 Image Similarity Dataset and Challenge").

The coefficients are data, not code: ``monitor/defaults/confidence.json``, written by
``python -m bench.calibrate --write`` with the split it was fitted on and its held-out
figures (``bench/RESULTS.md`` gives the commands), loaded once on first use
(:func:`model`). CLIP evidence is not in the fit (no weights on the benchmark
machine): a CLIP hit's own score (:meth:`~monitor.matching.stages.clip.ClipStage.score`)
stands in where it is higher.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from monitor.types import Hit, Match

FEATURES = ("hash_near", "hash_closeness", "hash_agreement", "hash_agreement_high",
            "hash_region", "inliers_log", "inliers_strong", "homography_agreement",
            "homography_agreement_high", "placement", "placement_high", "hash_and_inliers",
            "sscd_similarity", "sscd_similarity_high", "sscd_normalised", "sscd_and_inliers",
            "sscd_and_hash", "structure", "structure_high", "structure_and_sscd")
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

HIGH_SIMILARITY = 0.8
"""SSCD cosines above this get a second, steeper term: near-duplicates (measured on the
corpus: re-encodes and mild edits 0.85-0.99; unrelated drawings of one series up to 0.97,
which the normalised similarity then tells apart)."""

NORMALISED_CAP = 0.5
"""Normalised SSCD similarity (:mod:`monitor.matching.background`) is divided by this and
clipped to [0, 1]: edited copies on the benchmark normalise to 0.05-0.6, unrelated images
to at most about 0.1."""

HIGH_STRUCTURE = 0.8
"""Structure agreements (:mod:`monitor.matching.stages.structure`) above this get a hinge
term: heavy-filter copies of the benchmark agree at 0.81-0.99 (median 0.93), while the
best of an unrelated image's descriptor neighbours agrees at a median of 0.54."""

MODEL_FILE = Path(__file__).resolve().parent.parent / "defaults" / "confidence.json"
"""The shipped coefficients with their provenance (``bench.calibrate --write``)."""


@dataclass(frozen=True)
class ConfidenceModel:
    """A fitted logistic model over :data:`FEATURES` and where it came from.

    Attributes:
        intercept: the bias term.
        coefficients: one weight per :data:`FEATURES` entry.
        provenance: the file's other keys (command, split, held-out figures, date).
    """

    intercept: float
    coefficients: tuple[float, ...]
    provenance: dict


@cache
def model(path: Path = MODEL_FILE) -> ConfidenceModel:
    """The coefficients in ``path`` (default: the shipped file), read once.

    Raises:
        ValueError: the file names other features than :data:`FEATURES` (a model fitted
            for another version of this module).
        OSError: the file cannot be read.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if tuple(data["features"]) != FEATURES:
        raise ValueError(f"{path} was fitted on features {data['features']}, this version "
                         f"computes {list(FEATURES)}: refit with bench.calibrate --write")
    rest = {k: v for k, v in data.items() if k not in ("intercept", "coefficients")}
    return ConfidenceModel(float(data["intercept"]),
                           tuple(float(c) for c in data["coefficients"]), rest)


def _hinge(value: float) -> float:
    return max(0.0, value - HIGH_AGREEMENT) / (1.0 - HIGH_AGREEMENT)


def features(hits: Sequence[Hit]) -> np.ndarray:
    """The evidence of one match's hits as ``(len(FEATURES),) float64``, each in [0, 1].

    Per stage the strongest hit counts: the nearest pHash (its dense agreement, and
    whether it came from a sub-image), the homography with most inliers (its warp's
    dense agreement), the best crop placement (local hit without inliers) and the SSCD
    hit with the highest normalised similarity (raw cosine, its near-duplicate hinge,
    the normalised similarity, and that times the inlier and pHash terms: a filtered
    copy often has a weak homography or a far pHash that the descriptor backs) with its
    structure agreement (and its hinge, alone and times the normalised similarity).
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
    described = [h for h in hits if h.similarity is not None]
    if described:
        best = max(described, key=lambda h: h.normalised if h.normalised is not None
                   else h.similarity)
        sim = max(0.0, best.similarity)
        norm = best.normalised if best.normalised is not None else best.similarity
        out[12:15] = (sim, max(0.0, sim - HIGH_SIMILARITY) / (1.0 - HIGH_SIMILARITY),
                      min(1.0, max(0.0, norm / NORMALISED_CAP)))
        out[15] = out[14] * out[5]
        out[16] = out[14] * out[1]
        shaped = max((h.structure for h in described if h.structure is not None), default=0.0)
        high = max(0.0, shaped - HIGH_STRUCTURE) / (1.0 - HIGH_STRUCTURE)
        out[17:20] = (shaped, high, high * out[14])
    return out


def confidence(hits: Sequence[Hit], intercept: float | None = None,
               coefficients: Sequence[float] | None = None) -> float:
    """Confidence in [0, 1] that the hits' candidate copies their gallery image.

    ``sigmoid(intercept + coefficients · features(hits))`` (default: the shipped
    :func:`model`; ``bench.calibrate`` passes a refit), or a
    CLIP hit's score where higher (see the module docstring). A probability on the
    benchmark's matches, most of which are copies; elsewhere a ranking whose operating
    points ``bench/RESULTS.md`` measures (0.25 flags about as the default rules do).
    """
    if intercept is None or coefficients is None:
        shipped = model()
        intercept, coefficients = shipped.intercept, shipped.coefficients
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
