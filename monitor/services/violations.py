"""Reading recorded violations for the faces (API, dashboard, CLI): lists, one item, the
audit trail and the alerts of a violation.

Every list comes from the store's one listing query
(:func:`monitor.store.violations.find_violations`), so the faces, reports and mail agree.
The faces import this module, never the store. Review-status changes are
:func:`monitor.services.review.set_status`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from monitor.errors import InvalidRequest, NotFound
from monitor.outcome import items
from monitor.outcome.items import ReportItem
from monitor.services.review import history
from monitor.store import Store
from monitor.store import alerts as alert_repo
from monitor.store import violations as repo
from monitor.store.models import Alert
from monitor.store.violations import MAX_ID, Order, ViolationFilter, ViolationRow

__all__ = ["MAX_ID", "alerts_of", "collection_names", "get_item", "get_json", "history",
           "list_items", "list_page", "parse_since", "pending_alerts", "violation_json"]


def parse_since(text: str | None) -> datetime | None:
    """An ISO 8601 date or time (``Z`` accepted; naive taken as UTC) as an aware datetime;
    None for None or "".

    Raises:
        InvalidRequest: ``text`` is not ISO 8601.
    """
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest("'since' must be an ISO 8601 date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def violation_json(row: ViolationRow) -> dict[str, Any]:
    """One violation as ``/v1/violations`` lists it: ``id``, ``status``, ``verdict``,
    ``rule``, ``severity``, ``note``, ``created_at``/``updated_at`` (ISO 8601, UTC),
    ``candidate``, ``protected`` and ``match`` (``region`` [x0, y0, x1, y1] in pixels of
    the found image; ``distance`` in bits of 64)."""
    v, m, c, p, coll = row
    return {
        "id": v.id, "status": v.status, "verdict": v.verdict, "rule": v.rule,
        "severity": v.severity, "note": v.note, "created_at": v.created_at.isoformat(),
        "updated_at": v.updated_at.isoformat(),
        "candidate": {"id": c.id, "source": c.source, "page_url": c.page_url,
                      "sha256": c.sha256, "source_name": c.source_name,
                      "evidence_path": c.evidence_path},
        "protected": {"id": p.id, "path": p.path, "collection": coll.name, "sha256": p.sha256},
        "match": {"stage": m.stage, "score": m.score, "distance": m.distance,
                  "cosine": m.cosine, "similarity": m.similarity, "normalised": m.normalised,
                  "inliers": m.inliers,
                  "region": json.loads(m.region_json) if m.region_json else None,
                  "query_overlap": m.query_overlap, "target_overlap": m.target_overlap,
                  "target_region": (json.loads(m.target_region_json)
                                    if m.target_region_json else None)},
    }


def list_page(store: Store, *, status: list[str] | None = None, collection: str | None = None,
              verdict: str | None = None, since: datetime | None = None, limit: int = 100,
              offset: int = 0) -> dict[str, Any]:
    """``{"total", "limit", "offset", "items"}``: violations matching every filter (None or
    empty: any), newest first, ``items`` (:func:`violation_json`) paged by ``limit`` and
    ``offset``, ``total`` counted before paging. ``since``: created at or after (UTC).

    Raises:
        InvalidRequest: ``limit`` or ``offset`` is negative or beyond :data:`MAX_ID`.
    """
    if not (0 <= limit <= MAX_ID and 0 <= offset <= MAX_ID):
        raise InvalidRequest(f"'limit' and 'offset' must be between 0 and {MAX_ID}")
    where = ViolationFilter(status=status or None, collection=collection or None,
                            verdict=verdict or None, since=since)
    with store.session() as s:
        total = repo.count_violations(s, where)
        rows = repo.find_violations(s, where, order="newest", limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset,
            "items": [violation_json(r) for r in rows]}


def get_json(store: Store, violation_id: int) -> dict[str, Any]:
    """One violation as :func:`violation_json`.

    Raises:
        NotFound: no violation has this id.
    """
    with store.session() as s:
        rows = repo.find_violations(s, ViolationFilter(violation_ids=[violation_id]))
    if not rows:
        raise NotFound(f"violation {violation_id} not found")
    return violation_json(rows[0])


def list_items(store: Store, *, collection: str | None = None, status: list[str] | None = None,
               severity: list[str] | None = None, order: Order = "rank") -> list[ReportItem]:
    """Violations and review items matching every filter (None or empty: any) as report
    items, by ``order`` (``rank``: violations and severe ones first; ``newest``)."""
    with store.session() as s:
        return items.query_items(s, collection=collection, status=status, severity=severity,
                                 order=order)


def get_item(store: Store, violation_id: int) -> ReportItem:
    """The report item of one violation.

    Raises:
        NotFound: no violation has this id.
    """
    with store.session() as s:
        return items.get_item(s, violation_id)


def alerts_of(store: Store, violation_id: int) -> list[Alert]:
    """Every alert (mail, webhook) recorded for one violation, oldest first (empty for an
    unknown id)."""
    if not 0 < violation_id <= MAX_ID:
        return []
    with store.session() as s:
        return alert_repo.alerts_of(s, violation_id)


def pending_alerts(store: Store, kind: str = "immediate") -> list[Alert]:
    """Alerts of ``kind`` still waiting to be sent (due or backing off), oldest first."""
    with store.session() as s:
        return alert_repo.pending_alerts(s, kind)


def collection_names(store: Store) -> list[str]:
    """Every collection's name, sorted (choices of the violation filters)."""
    with store.session() as s:
        return repo.collection_names(s)
