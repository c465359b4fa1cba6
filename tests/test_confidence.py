"""The calibrated match confidence: all of a match's evidence in one score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import calibrate
from monitor.config import Settings
from monitor.matching import confidence
from monitor.matching.rules import Rule
from monitor.types import Hit, Match
from tests.test_engine import gallery_engine
from tests.test_stage_local import _decode, _rgb


def _hash(d: int, agreement: float | None = None, region: bool = False) -> Hit:
    return Hit("hash", 1, 1 - d / 32, distance=d, agreement=agreement,
               region=(0, 0, 9, 9) if region else None)


def _local(inliers: int | None, agreement: float | None = None) -> Hit:
    return Hit("local", 1, 0.5, inliers=inliers, agreement=agreement)


def test_agreeing_weak_evidence_outranks_either_alone() -> None:
    """A pHash 6 bits off with a dense agreement of 0.95 and a homography of 7 inliers is
    the benchmark's typical corroborated copy; the best single hit ranked it below a bare
    pHash hit 4 bits off (0.875), the confidence must not."""
    both = confidence.confidence([_hash(6, 0.95), _local(7, 0.9)])
    assert both > confidence.confidence([_hash(4)])
    assert both > confidence.confidence([_local(7, 0.9)])
    assert both > confidence.confidence([_hash(6, 0.95)])


def test_confidence_never_falls_as_evidence_grows() -> None:
    """Monotone in each kind of evidence: closer pHash, more inliers, higher agreement."""
    c = confidence.confidence
    by_bits = [c([_hash(d, 0.9)]) for d in range(16, -1, -1)]
    by_inliers = [c([_local(n, 0.7)]) for n in range(6, 80)]
    by_agreement = [c([_hash(8, a / 20), _local(None, a / 20)]) for a in range(21)]
    for seq in (by_bits, by_inliers, by_agreement):
        assert all(b >= a for a, b in zip(seq, seq[1:], strict=False))
    assert all(w >= 0 for f, w in zip(confidence.FEATURES, confidence.model().coefficients,
                                      strict=True) if f != "hash_region")
    assert c([]) < 0.05 < 0.95 < c([_hash(0, 1.0), _local(60, 1.0)])


def test_clip_hit_score_stands_in_where_higher() -> None:
    clip = Hit("clip", 1, 0.97, cosine=0.99)
    assert confidence.confidence([clip, _hash(14)]) == pytest.approx(0.97)
    assert confidence.confidence([Hit("clip", 1, 0.0, cosine=0.2)]) == pytest.approx(
        confidence.confidence([]))


def test_engine_ranks_a_real_copy_above_a_stranger() -> None:
    """On real photos: an edited copy's match is confident, an unrelated photo's best
    match (if any) is not, and ``min_confidence`` separates them as a rule."""
    engine = gallery_engine(Settings(clip={"enabled": False}))
    copy = _rgb("astronaut").crop((40, 30, 470, 500)).rotate(4, expand=True)
    top = engine.match(_decode(copy))[0]
    assert top.gallery_id == 0 and top.score > 0.9
    assert top.score == pytest.approx(confidence.confidence(top.hits))
    rule = Rule(name="one-threshold", min_confidence=0.9)
    assert rule.satisfied_by(top)
    stranger = engine.match(_decode(_rgb("camera")))
    assert all(not rule.satisfied_by(m) for m in stranger)
    assert not rule.satisfied_by(Match(0, "hash", 0.89, (_hash(5),)))


def test_calibrate_fits_an_evidence_file(tmp_path: Path) -> None:
    """``bench.calibrate`` reads ``bench.accuracy --evidence`` lines and fits a model
    under which copies outscore distractors (positive, finite coefficients)."""
    lines = []
    for i in range(40):
        copy = {"stage": "hash", "score": 0.8, "distance": 4 + i % 5, "cosine": None,
                "inliers": None, "agreement": 0.9 + (i % 10) / 100, "region": False}
        junk = {"stage": "hash", "score": 0.7, "distance": 8 + i % 5, "cosine": None,
                "inliers": None, "agreement": 0.3 + (i % 10) / 50, "region": False}
        lines.append({"path": f"p{i}", "family": "mild", "truth": i,
                      "matches": [{"gid": i, "hits": [copy]}, {"gid": 99, "hits": [junk]}]})
        lines.append({"path": f"d{i}", "family": "mild", "truth": -1,
                      "matches": [{"gid": i, "hits": [junk]}]})
    path = tmp_path / "ev.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    queries = calibrate.load(path)
    intercept, coef = calibrate.fit(queries, 1.0)
    assert len(coef) == len(confidence.FEATURES)
    assert coef[confidence.FEATURES.index("hash_agreement")] > 0
    row = calibrate.evaluate(queries, calibrate.logistic(intercept, coef), 1e-3, None)
    assert row["recall"] == 1.0 and row["uap"] > 0.99
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n\nkept\n", encoding="utf-8")
    assert calibrate.main(["--fit", str(path), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "kept" in text and text.count(calibrate.START) == 1
    assert "| confidence (this fit) | `ev.jsonl` (fit) | 1.000 |" in text


def test_calibrate_writes_a_model_file_the_product_loads(tmp_path: Path) -> None:
    """``--write`` gives a data file with features, coefficients (none negative but
    ``hash_region``), the operating point and per-split figures, which ``model`` loads."""
    lines = []
    for i in range(30):
        copy = {"stage": "descriptor", "score": 0.5, "distance": None, "cosine": None,
                "inliers": None, "agreement": None, "similarity": 0.5 + i / 100,
                "normalised": 0.2 + i / 200, "region": False}
        junk = {"stage": "descriptor", "score": 0.1, "distance": None, "cosine": None,
                "inliers": None, "agreement": None, "similarity": 0.3 + i / 200,
                "normalised": -0.1 + i / 400, "region": False}
        lines.append({"path": f"p{i}", "family": "heavy", "truth": i,
                      "matches": [{"gid": i, "hits": [copy]}]})
        lines.append({"path": f"d{i}", "family": "heavy", "truth": -1,
                      "matches": [{"gid": i, "hits": [junk]}]})
    ev = tmp_path / "ev.jsonl"
    ev.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    target = tmp_path / "confidence.json"
    assert calibrate.main(["--fit", str(ev), "--out", str(tmp_path / "R.md"),
                           "--write", str(target)]) == 0
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["features"] == list(confidence.FEATURES)
    assert data["splits"]["ev.jsonl"]["swept_recall"] == 1.0
    assert 0.0 < data["min_confidence"] < 1.0
    loaded = confidence.model(target)
    assert loaded.coefficients[confidence.FEATURES.index("sscd_normalised")] > 0
    assert all(w >= 0 for f, w in zip(confidence.FEATURES, loaded.coefficients, strict=True)
               if f != "hash_region")
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({**data, "features": ["hash_near"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="refit"):
        confidence.model(bad)
