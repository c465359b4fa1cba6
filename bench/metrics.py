"""Copy-detection metrics as defined for DISC21 (Douze et al., 2021, "The 2021 Image
Similarity Dataset and Challenge", arXiv:2106.09672, §4) and thorn's ``perception``
benchmark (recall at a fixed operating point, per transform).

Conventions used throughout:

* A *prediction* is a ``(query, gallery image, score)`` triple; higher score means
  more confident. A query with no prediction has score ``-inf`` (never flagged).
* A query is *flagged* at threshold ``tau`` when its top score is strictly above
  ``tau``. ``threshold_at_fpr`` picks ``tau`` so that at most ``floor(fpr * M)`` of
  the ``M`` distractor queries (queries with no copy in the gallery) are flagged.
* Recall counts a positive query only when it is flagged *and* its top prediction
  is the correct gallery image.
* µAP (micro average precision) pools every prediction of every query into one
  list ranked by score and computes ``AP = sum_i P(i) * (R(i) - R(i-1))`` where
  ``R`` is the number of correct predictions so far divided by the number of
  positive queries (ground-truth pairs), so missed positives cost recall. Tied
  scores form one step evaluated at the end of the tie group (the convention of
  scikit-learn's ``average_precision_score``), so the result does not depend on
  the arbitrary order of equal scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def threshold_at_fpr(distractor_scores: Sequence[float], fpr: float = 1e-3) -> float:
    """The threshold ``tau`` (flag iff ``score > tau``) at false-positive rate ``fpr``.

    ``distractor_scores`` holds the top score of each distractor query (``-inf`` when
    it got no prediction). ``tau`` is the ``(k+1)``-th largest score with
    ``k = floor(fpr * M)``, so at most ``k`` distractors score above it (fewer when
    scores tie). Returns ``-inf`` when at most ``k`` distractors have any score.

    Raises:
        ValueError: no distractor scores, or ``fpr`` outside [0, 1].
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must lie in [0, 1], got {fpr}")
    scores = np.sort(np.asarray(distractor_scores, np.float64))[::-1]
    if scores.size == 0:
        raise ValueError("no distractor scores")
    k = int(math.floor(fpr * scores.size + 1e-9))
    return -math.inf if k >= scores.size else float(scores[k])


def false_positive_rate(distractor_scores: Sequence[float], tau: float) -> float:
    """Fraction of distractor queries whose top score is above ``tau`` (flagged)."""
    scores = np.asarray(distractor_scores, np.float64)
    return float(np.mean(scores > tau)) if scores.size else 0.0


def fpr_upper_bound(flagged: int, distractors: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound on a false-positive rate measured as ``flagged``
    of ``distractors`` queries (exact binomial, Clopper & Pearson 1934): with 0 of 911,
    the rate is below 0.33 % at 95 % ("rule of three", 3/n). Returns NaN for no queries.
    """
    if distractors <= 0:
        return math.nan
    if flagged >= distractors:
        return 1.0
    if flagged == 0:
        return 1.0 - (1.0 - level) ** (1.0 / distractors)
    from scipy.stats import beta

    return float(beta.ppf(level, flagged + 1, distractors - flagged))


def recall_at(top_scores: Sequence[float], top_correct: Sequence[bool], tau: float) -> float:
    """Fraction of positive queries flagged (top score ``> tau``) with the right top match.

    ``top_scores[i]`` and ``top_correct[i]`` describe positive query ``i``'s top
    prediction (``-inf`` / False when it has none). Returns NaN for no queries.
    """
    scores = np.asarray(top_scores, np.float64)
    correct = np.asarray(top_correct, bool)
    if scores.size == 0:
        return math.nan
    return float(np.mean((scores > tau) & correct))


def micro_ap(scores: Sequence[float], correct: Sequence[bool], n_positives: int) -> float:
    """Micro average precision of pooled predictions (DISC21 µAP), in [0, 1].

    Args:
        scores: score of every prediction of every query (finite values).
        correct: whether each prediction is a ground-truth (query, gallery) pair;
            each ground-truth pair must appear at most once.
        n_positives: number of ground-truth pairs (positive queries), the recall
            denominator; must be at least the number of correct predictions.

    Raises:
        ValueError: lengths differ, ``n_positives`` is not positive or too small.
    """
    s = np.asarray(scores, np.float64)
    c = np.asarray(correct, bool)
    if s.shape != c.shape:
        raise ValueError("scores and correct differ in length")
    if n_positives <= 0 or c.sum() > n_positives:
        raise ValueError(f"n_positives={n_positives} but {int(c.sum())} correct predictions")
    if s.size == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    s, c = s[order], c[order]
    tp = np.cumsum(c)
    # the last index of every group of equal scores
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp_end = tp[ends]
    precision = tp_end / (ends + 1)
    delta_recall = np.diff(np.r_[0, tp_end]) / n_positives
    return float(np.sum(precision * delta_recall))


def top_prediction(preds: Sequence[tuple[int, float]]) -> tuple[int | None, float]:
    """``(gallery_id, score)`` of the highest-scoring prediction; ``(None, -inf)`` if none.

    Ties go to the earliest prediction (detectors list theirs best first).
    """
    best: tuple[int | None, float] = (None, -math.inf)
    for gid, score in preds:
        if score > best[1]:
            best = (gid, score)
    return best
