"""Metric functions of bench/metrics.py on hand-made score lists with hand-computed answers."""

from __future__ import annotations

import math

import pytest

from bench.metrics import (
    false_positive_rate,
    fpr_upper_bound,
    micro_ap,
    recall_at,
    threshold_at_fpr,
    top_prediction,
)

# -- threshold at a false-positive rate ----------------------------------------------


def test_threshold_allows_exactly_k_distractors():
    # 2000 distractors, FPR 1e-3 -> at most 2 may be flagged; scores 0..1999
    scores = list(range(2000))
    tau = threshold_at_fpr(scores, 1e-3)
    assert tau == 1997  # flag iff score > 1997: 1998 and 1999 are flagged
    assert false_positive_rate(scores, tau) == pytest.approx(2 / 2000)


def test_threshold_with_ties_flags_fewer_not_more():
    # 10 distractors, FPR 0.1 -> k = 1; the top two tie at 5.0, so neither may be flagged
    scores = [5.0, 5.0, 1, 1, 1, 1, 1, 1, 1, 1]
    tau = threshold_at_fpr(scores, 0.1)
    assert tau == 5.0
    assert false_positive_rate(scores, tau) == 0.0


def test_threshold_zero_fpr_is_above_every_distractor():
    assert threshold_at_fpr([-3.0, -7.0, -1.0], 0.0) == -1.0


def test_threshold_when_few_distractors_have_any_prediction():
    # 1000 distractors, FPR 1e-3 -> k = 1; only one has a prediction: everything passes
    scores = [-math.inf] * 999 + [0.9]
    tau = threshold_at_fpr(scores, 1e-3)
    assert tau == -math.inf
    assert false_positive_rate(scores, tau) == pytest.approx(1e-3)


def test_threshold_for_hash_distances_as_negative_scores():
    # distances 10, 12, 20, 30 (scores -d); FPR 0.25 -> k = 1 -> tau = -12 -> d <= 11
    tau = threshold_at_fpr([-10, -12, -20, -30], 0.25)
    assert tau == -12
    assert false_positive_rate([-10, -12, -20, -30], tau) == 0.25


def test_threshold_rejects_bad_input():
    with pytest.raises(ValueError):
        threshold_at_fpr([], 1e-3)
    with pytest.raises(ValueError):
        threshold_at_fpr([1.0], 1.5)


# -- recall --------------------------------------------------------------------------


def test_recall_needs_score_above_threshold_and_correct_top_match():
    scores = [0.9, 0.8, 0.3, 0.95, -math.inf]
    correct = [True, False, True, True, False]
    # above 0.5: queries 0, 1, 3; of those correct: 0 and 3 -> 2 of 5
    assert recall_at(scores, correct, 0.5) == pytest.approx(0.4)
    # strictly above: a score equal to tau is not flagged
    assert recall_at([0.5], [True], 0.5) == 0.0
    assert math.isnan(recall_at([], [], 0.5))


# -- µAP -----------------------------------------------------------------------------


def test_uap_perfect_ranking_is_one():
    assert micro_ap([0.9, 0.8, 0.7, 0.1, 0.05], [True, True, True, False, False], 3) == 1.0


def test_uap_one_distractor_above_half_the_positives():
    # ranking P P N P P with 4 positives: precision at each positive 1, 1, 3/4, 4/5
    value = micro_ap([5, 4, 3, 2, 1], [True, True, False, True, True], 4)
    assert value == pytest.approx((1 + 1 + 3 / 4 + 4 / 5) / 4)  # 0.8875


def test_uap_missed_positives_cost_recall():
    # 2 of 4 positive queries found, both ranked first: AP = (1 + 1) / 4
    assert micro_ap([0.9, 0.8, 0.1], [True, True, False], 4) == pytest.approx(0.5)


def test_uap_ties_do_not_depend_on_order():
    # one positive tied with one negative: a single step, precision 1/2
    assert micro_ap([1.0, 1.0], [True, False], 1) == pytest.approx(0.5)
    assert micro_ap([1.0, 1.0], [False, True], 1) == pytest.approx(0.5)
    # ties after a clean start: P, then {P, N, N} tied -> 1/3 * 1 + 1/3 * (2/4)
    value = micro_ap([3, 2, 2, 2], [True, False, True, False], 3)
    assert value == pytest.approx(1 / 3 + 1 / 3 * 0.5)


def test_uap_all_wrong_is_zero_and_input_checked():
    assert micro_ap([0.9, 0.5], [False, False], 2) == 0.0
    assert micro_ap([], [], 2) == 0.0
    with pytest.raises(ValueError):
        micro_ap([0.9], [True], 0)
    with pytest.raises(ValueError):
        micro_ap([0.9, 0.8], [True], 2)


def test_top_prediction_takes_highest_then_earliest():
    assert top_prediction([(3, -10.0), (7, -4.0), (9, -4.0)]) == (7, -4.0)
    assert top_prediction([]) == (None, -math.inf)


def test_fpr_upper_bound_is_the_exact_binomial_bound() -> None:
    """0 of n: 1 - 0.05 ** (1 / n), about 3 / n (rule of three); k of n: Clopper-Pearson,
    checked against the binomial tail it inverts: P(X <= k | p = bound) = 0.05."""
    from scipy.stats import binom

    assert fpr_upper_bound(0, 911) == pytest.approx(3 / 911, rel=0.01)
    for k, n in ((2, 923), (5, 944)):
        p = fpr_upper_bound(k, n)
        assert k / n < p < 1 and binom.cdf(k, n, p) == pytest.approx(0.05, abs=1e-6)
    assert fpr_upper_bound(3, 3) == 1.0
    assert math.isnan(fpr_upper_bound(0, 0))
