"""Repository of violations: the one listing query, review-status changes and their audit trail.

Every face lists violations through :func:`find_violations` (and :func:`count_violations`
for the total before paging), so the API, the dashboard, the CLI, reports, exports and
mail select the same rows for the same filters. A row is the violation joined to its
match, candidate, protected image and collection (:data:`ViolationRow`, inner joins).

Orders (:data:`Order`):

* ``"rank"``: violations before review items, then severity (:data:`SEVERITY_RANK`,
  unknown severities last), then score (highest first), then id: what reports show.
* ``"newest"``: highest id first: what the API and ``violations list`` show.

Times are timezone-aware UTC; naive values (SQLite drops the zone) are taken as UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import case, false, func
from sqlmodel import Session, select

from monitor.store.models import (
    Candidate,
    Collection,
    MatchRow,
    ProtectedImage,
    Violation,
    ViolationEvent,
    utcnow,
)

MAX_ID = 2**63 - 1
"""The largest row id SQLite stores (a signed 64-bit INTEGER): ids beyond it name nothing."""

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
"""Sort rank of each rule severity (most severe first); other severities rank 9."""

Order = Literal["rank", "newest"]
"""How :func:`find_violations` sorts (see the module doc)."""

ViolationRow = tuple[Violation, MatchRow, Candidate, ProtectedImage, Collection]
"""One listed violation with its match, candidate, protected image and collection."""


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; naive values (SQLite drops the zone) are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class ViolationFilter:
    """Which violations to list; every field set narrows the list (None or empty: any).

    Attributes:
        scan_id: candidates last seen by this scan.
        collection: collection name of the protected image.
        status: accepted review states (``open``, ``confirmed``, ...).
        severity: accepted rule severities.
        verdict: ``violation`` or ``review``.
        since: created at or after (inclusive, UTC).
        until: created before (exclusive, UTC).
        violation_ids: only these ids (an empty list selects nothing).
    """

    scan_id: int | None = None
    collection: str | None = None
    status: Sequence[str] | None = None
    severity: Sequence[str] | None = None
    verdict: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    violation_ids: Sequence[int] | None = None


def _select(where: ViolationFilter) -> Any:
    """The one listing query: the joined rows of :data:`ViolationRow`, filtered."""
    stmt = (select(Violation, MatchRow, Candidate, ProtectedImage, Collection)
            .join(MatchRow, Violation.match_id == MatchRow.id)
            .join(Candidate, Violation.candidate_id == Candidate.id)
            .join(ProtectedImage, Violation.protected_id == ProtectedImage.id)
            .join(Collection, ProtectedImage.collection_id == Collection.id))
    if where.scan_id is not None:  # an id SQLite cannot hold names no scan
        stmt = stmt.where(Candidate.scan_id == where.scan_id if abs(where.scan_id) <= MAX_ID
                          else false())
    if where.collection is not None:
        stmt = stmt.where(Collection.name == where.collection)
    if where.status:
        stmt = stmt.where(Violation.status.in_(list(where.status)))
    if where.severity:
        stmt = stmt.where(Violation.severity.in_(list(where.severity)))
    if where.verdict is not None:
        stmt = stmt.where(Violation.verdict == where.verdict)
    if where.since is not None:
        stmt = stmt.where(Violation.created_at >= as_utc(where.since))
    if where.until is not None:
        stmt = stmt.where(Violation.created_at < as_utc(where.until))
    if where.violation_ids is not None:  # ids SQLite cannot hold name nothing
        stmt = stmt.where(Violation.id.in_([i for i in where.violation_ids
                                            if 0 < i <= MAX_ID]))
    return stmt


def _ordered(stmt: Any, order: Order) -> Any:
    if order == "newest":
        return stmt.order_by(Violation.id.desc())
    if order != "rank":
        raise ValueError(f"unknown order {order!r}; use 'rank' or 'newest'")
    severity = case(SEVERITY_RANK, value=func.lower(Violation.severity), else_=9)
    return stmt.order_by(case((Violation.verdict == "violation", 0), else_=1), severity,
                         MatchRow.score.desc(), Violation.id)


def find_violations(session: Session, where: ViolationFilter = ViolationFilter(), *,
                    order: Order = "rank", limit: int | None = None,
                    offset: int = 0) -> list[ViolationRow]:
    """The rows matching ``where``, sorted by ``order``, at most ``limit`` after skipping
    ``offset`` (None: all).

    Raises:
        ValueError: ``order`` is not ``rank`` or ``newest``.
    """
    stmt = _ordered(_select(where), order)
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return [tuple(row) for row in session.exec(stmt).all()]


def count_violations(session: Session, where: ViolationFilter = ViolationFilter()) -> int:
    """How many rows :func:`find_violations` lists for ``where`` before paging."""
    sub = _select(where).subquery()
    return session.exec(select(func.count()).select_from(sub)).one()


def get_violation(session: Session, violation_id: int) -> Violation | None:
    """The violation ``violation_id``, or None when no violation has this id."""
    return session.get(Violation, violation_id) if 0 < violation_id <= MAX_ID else None


def violation_parts(session: Session, violation_id: int) -> tuple[
        Violation, Candidate | None, MatchRow | None, ProtectedImage | None,
        Collection | None] | None:
    """A violation with whichever of its candidate, match, protected image and collection
    still exist (each None when gone), or None when the violation itself is gone."""
    v = get_violation(session, violation_id)
    if v is None:
        return None
    c, m = session.get(Candidate, v.candidate_id), session.get(MatchRow, v.match_id)
    p = session.get(ProtectedImage, v.protected_id)
    coll = session.get(Collection, p.collection_id) if p else None
    return v, c, m, p, coll


def candidate_of(session: Session, v: Violation) -> Candidate | None:
    """The candidate (found image) of violation ``v``; None when it is gone."""
    return session.get(Candidate, v.candidate_id)


def record_status(session: Session, v: Violation, status: str, actor: str,
                  note: str = "") -> Violation:
    """Set ``v`` (read in ``session``) to ``status`` with an audit event (who, when in UTC,
    from, to, note); a non-empty ``note`` also replaces the violation's note. Commits and
    returns the refreshed row."""
    now = utcnow()
    session.add(ViolationEvent(violation_id=v.id, at=now, actor=actor, from_status=v.status,
                               to_status=status, note=note))
    v.status, v.updated_at = status, now
    if note:
        v.note = note
    session.add(v)
    session.commit()
    session.refresh(v)
    return v


def history(session: Session, violation_id: int) -> list[ViolationEvent]:
    """The audit trail of one violation, oldest first (empty for an unknown id)."""
    if not 0 < violation_id <= MAX_ID:
        return []
    q = (select(ViolationEvent).where(ViolationEvent.violation_id == violation_id)
         .order_by(ViolationEvent.at, ViolationEvent.id))
    return list(session.exec(q).all())


def collection_names(session: Session) -> list[str]:
    """Every collection's name, sorted (the filter choices of violation lists)."""
    return sorted(session.exec(select(Collection.name)).all())
