"""``/v1/violations``: list and filter recorded violations, and review them.

``GET /v1/violations`` filters: ``status`` (open, confirmed, dismissed, licensed;
repeatable), ``collection`` (name), ``since`` (ISO 8601; created at or after),
``verdict``; paging with ``limit`` (1–1000) and ``offset``. Newest first.

``POST /v1/violations/{id}/status`` with JSON ``{"status", "note", "actor",
"allow_domain"}`` changes the review status through :func:`monitor.services.review.set_status`
(audit trail: who, when, from, to, note); 404 for an unknown id, 422 for an
unknown status.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy import func, select

from monitor.api.intake import signed, state_of
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


class StatusChange(BaseModel):
    """Body of a review-status change."""

    status: str
    note: str = ""
    actor: str = "api"
    allow_domain: bool = False


@router.post("/violations/{violation_id}/status", dependencies=[Depends(signed)])
def change_status(request: Request, violation_id: int, change: StatusChange) -> dict[str, Any]:
    """Set the review status of one violation; returns it as listed."""
    from monitor.errors import NotFound
    from monitor.services.review import InvalidStatus, set_status

    ws = state_of(request).ws
    try:
        set_status(ws, violation_id, change.status, change.actor[:200], change.note,
                   allow_domain=change.allow_domain)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except InvalidStatus as exc:
        raise HTTPException(422, str(exc)) from None
    with ws.session() as s:
        row = s.execute(_query().where(Violation.id == violation_id)).one()
    return _row(*row)


def _query():
    return (select(Violation, Candidate, ProtectedImage, Collection, MatchRow)
            .join(Candidate, Violation.candidate_id == Candidate.id)
            .join(ProtectedImage, Violation.protected_id == ProtectedImage.id)
            .join(Collection, ProtectedImage.collection_id == Collection.id)
            .join(MatchRow, Violation.match_id == MatchRow.id))


@router.get("/violations", dependencies=[Depends(signed)])
def list_violations(request: Request, status: list[str] | None = Query(None),
                    collection: str | None = None, verdict: str | None = None,
                    since: str | None = None, limit: int = Query(100, ge=1, le=1000),
                    offset: int = Query(0, ge=0)) -> dict[str, Any]:
    """Violations matching the filters, newest first, with ``total`` before paging."""
    q = _query()
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
