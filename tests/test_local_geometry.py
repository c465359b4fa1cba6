"""Geometry of the local stage: the similarity fallback and the visible part of a quad."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.matching.stages.local_geometry import corners, fit, visible


def _similarity(degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    t = np.deg2rad(degrees)
    return scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]), np.asarray(shift)


def test_points_along_one_stroke_fall_back_to_a_similarity() -> None:
    # twelve keypoints on one vertical stroke and one beside it (a crop of parallel
    # pencils): a homography is not determined by them (OpenCV gives none), a
    # rotation + scale + shift is
    src = np.vstack([np.c_[np.full(12, 100.0), np.linspace(20, 460, 12)], [[300, 240]]])
    rot, shift = _similarity(10, 0.9, (80, 20))
    dst = src @ rot.T + shift
    geo = fit(src.astype(np.float32), dst.astype(np.float32), (355, 480), (400, 520), src)
    assert geo is not None and geo.inliers == 13
    assert np.allclose(geo.homography[2], [0, 0, 1])  # affine: the similarity model
    assert np.allclose(geo.homography[:2, :2], rot, atol=1e-3)
    assert np.allclose(geo.homography[:2, 2], shift, atol=0.5)


def test_unrelated_points_give_no_fit() -> None:
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 400, (30, 2)).astype(np.float32)
    dst = rng.uniform(0, 400, (30, 2)).astype(np.float32)
    assert fit(src, dst, (400, 400), (400, 400), src) is None


def _turned(quad: np.ndarray, degrees: float) -> np.ndarray:
    rot, _ = _similarity(degrees, 1.0, (0, 0))
    centre = quad.mean(axis=0)
    return (quad - centre) @ rot.T + centre


@pytest.mark.parametrize(("quad", "expected"), [
    (corners((100, 100)), 1.0),                     # the whole candidate
    (corners((100, 100)) + [50, 0], 0.5),           # half of it off the right edge
    (corners((100, 100)) + [300, 0], 0.0),          # beside the candidate
    # a copy turned 45° about the centre: its area on the candidate is the octagon
    # 2(√2 - 1) ≈ 0.828 of it; its bounding box would say 0.5
    (_turned(corners((100, 100)), 45), 2 * (np.sqrt(2) - 1)),
])
def test_visible_measures_the_quad_not_its_box(quad: np.ndarray, expected: float) -> None:
    assert visible(quad, (100, 100)) == pytest.approx(expected, abs=1e-3)
