"""Keypoint extraction: keypoint-poor graphics get relaxed SIFT thresholds, others do not."""

from __future__ import annotations

import numpy as np
import pytest

import monitor.matching.stages.local_features as lf
from bench.edits import apply
from monitor.matching.stages.local import LocalIndex, LocalStage
from tests.test_stage_local import _decode, _rgb


def _gray(name: str) -> np.ndarray:
    return lf.feature_gray(np.asarray(_rgb(name).convert("L")), 480)


def _default_count(gray: np.ndarray, n: int = 800) -> int:
    import cv2

    return len(cv2.SIFT_create(nfeatures=n, contrastThreshold=0.02).detect(gray, None))


def test_silhouette_gets_more_keypoints_textured_photo_unchanged() -> None:
    horse, camera = _gray("horse"), _gray("camera")  # a flat silhouette; a textured photo
    assert _default_count(horse) < lf.FEW_KEYPOINTS
    pts, desc = lf.extract(horse, "sift", 800)
    assert len(pts) > 1.3 * _default_count(horse) and desc.shape == (len(pts), 128)
    assert _default_count(camera) >= lf.FEW_KEYPOINTS
    assert len(lf.extract(camera, "sift", 800)[0]) == _default_count(camera)


@pytest.mark.parametrize("family,seed", [("crop", 1), ("rotate", 4), ("mild", 10)])
def test_edited_silhouette_verified_with_more_inliers(monkeypatch, family, seed) -> None:
    edited = apply(_rgb("horse"), family, seed)

    def inliers() -> int:  # a fresh decode: candidate features are cached per image
        stage, index = LocalStage(), LocalIndex()
        index.add(0, stage.compute(_decode(_rgb("horse")), gallery=True))
        hits = stage.match_image(_decode(edited), index)
        return hits[0].inliers if hits else 0

    relaxed = inliers()
    monkeypatch.setattr(lf, "FEW_KEYPOINTS", 0)  # default thresholds only
    assert relaxed > 1.3 * inliers()
