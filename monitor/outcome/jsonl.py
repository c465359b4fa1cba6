"""The JSON-lines contract of ``check --format jsonl`` (DESIGN.md, "Surfaces")."""

from __future__ import annotations

from typing import Any

from monitor.types import CheckResult


def result_json(result: CheckResult, info: dict[int, tuple[str, str, dict]]) -> dict[str, Any]:
    """One candidate as the documented JSON object.

    ``matches`` lists the rule-flagged matches, best first, each with the
    evidence of every stage that saw it (``distance`` in bits of 64, ``cosine`` the CLIP
    cosine, ``similarity`` and ``normalised`` the SSCD cosine raw and score-normalised,
    ``inliers``) and ``region`` ``[x0, y0, x1, y1]`` on the candidate in pixels; the
    overlap both ways (:attr:`~monitor.types.Match.query_overlap`): ``query_overlap``, the
    share in [0, 1] of the candidate that is the copy, ``target_overlap``, the share of the
    protected image that was copied, and ``target_region`` ``[x0, y0, x1, y1]``, that part
    in the protected image's pixels (each None when unknown).
    """
    matches = []
    for o in result.outcomes:
        m = o.match
        path, collection, _ = info.get(m.gallery_id, ("", "", {}))
        matches.append({
            "gallery_id": str(m.gallery_id), "gallery_path": path, "collection": collection,
            "stage": m.stage, "score": round(m.score, 4), "distance": m.distance,
            "cosine": _share(m.cosine), "similarity": _share(m.similarity),
            "normalised": _share(m.normalised),
            "inliers": m.inliers, "region": list(m.region) if m.region else None,
            "query_overlap": _share(m.query_overlap), "target_overlap": _share(m.target_overlap),
            "target_region": list(m.target_region) if m.target_region else None,
            "verdict": o.verdict.value, "rule": o.rule,
        })
    return {"path": result.source, "sha256": result.sha256, "verdict": result.verdict.value,
            "matches": matches, "error": result.error}


def _share(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
