"""The JSON-lines contract of ``check --format jsonl`` (DESIGN.md, "Surfaces")."""

from __future__ import annotations

from typing import Any

from monitor.types import CheckResult


def result_json(result: CheckResult, info: dict[int, tuple[str, str, dict]]) -> dict[str, Any]:
    """One candidate as the documented JSON object.

    ``matches`` lists the rule-flagged matches, best first, each with the
    evidence of every stage that saw it (``distance`` in bits of 64, ``cosine``,
    ``inliers``) and ``region`` ``[x0, y0, x1, y1]`` on the candidate in pixels.
    """
    matches = []
    for o in result.outcomes:
        m = o.match
        path, collection, _ = info.get(m.gallery_id, ("", "", {}))
        matches.append({
            "gallery_id": str(m.gallery_id), "gallery_path": path, "collection": collection,
            "stage": m.stage, "score": round(m.score, 4), "distance": m.distance,
            "cosine": None if m.cosine is None else round(m.cosine, 4),
            "inliers": m.inliers, "region": list(m.region) if m.region else None,
            "verdict": o.verdict.value, "rule": o.rule,
        })
    return {"path": result.source, "sha256": result.sha256, "verdict": result.verdict.value,
            "matches": matches, "error": result.error}
