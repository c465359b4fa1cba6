"""``GET /v1/violations``: list and filter recorded violations (review changes live elsewhere).

Filters: ``status`` (open, confirmed, dismissed, licensed; repeatable),
``collection`` (name), ``since`` (ISO 8601; created at or after), ``verdict``;
paging with ``limit`` (1–1000) and ``offset``. Newest first.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import func, select

from monitor.server.intake import signed, state_of
from monitor.store.models import Candidate, Collection, MatchRow, ProtectedImage, Violation

router = APIRouter(prefix="/v1", tags=["violations"])


def _row(v: Violation, c: Candidate, p: ProtectedImage, coll: Collection,
         m: MatchRow) -> dict[str, Any]:
    return {
        "id": v.id, "status": v.status, "verdict": v.verdict, "rule": v.rule,
        "severity": v.severity, "note": v.note, "created_at": v.created_at.isoformat(),
        "updated_at": v.updated_at.isoformat(),
        "candidate": {"id": c.id, "source": c.source, "page_url": c.page_url,
                      "sha256": c.sha256, "source_name": c.source_name,
                      "evidence_path": c.evidence_path},
        "protected": {"id": p.id, "path": p.path, "collection": coll.name, "sha256": p.sha256},
        "match": {"stage": m.stage, "score": m.score, "distance": m.distance,
                  "cosine": m.cosine, "inliers": m.inliers,
                  "region": json.loads(m.region_json) if m.region_json else None},
    }


@router.get("/violations", dependencies=[Depends(signed)])
def list_violations(request: Request, status: list[str] | None = Query(None),
                    collection: str | None = None, verdict: str | None = None,
                    since: str | None = None, limit: int = Query(100, ge=1, le=1000),
                    offset: int = Query(0, ge=0)) -> dict[str, Any]:
    """Violations matching the filters, newest first, with ``total`` before paging."""
    q = (select(Violation, Candidate, ProtectedImage, Collection, MatchRow)
         .join(Candidate, Violation.candidate_id == Candidate.id)
         .join(ProtectedImage, Violation.protected_id == ProtectedImage.id)
         .join(Collection, ProtectedImage.collection_id == Collection.id)
         .join(MatchRow, Violation.match_id == MatchRow.id))
    if status:
        q = q.where(Violation.status.in_(status))
    if collection:
        q = q.where(Collection.name == collection)
    if verdict:
        q = q.where(Violation.verdict == verdict)
    if since:
        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise HTTPException(422, "'since' must be an ISO 8601 date or time") from None
        q = q.where(Violation.created_at >= (when if when.tzinfo else when.replace(tzinfo=UTC)))
    ws = state_of(request).ws
    with ws.session() as s:
        total = s.execute(select(func.count()).select_from(q.subquery())).scalar_one()
        rows = s.execute(q.order_by(Violation.id.desc()).limit(limit).offset(offset)).all()
    return {"total": total, "limit": limit, "offset": offset,
            "items": [_row(*r) for r in rows]}
