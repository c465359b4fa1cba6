"""The rows every output shares: a violation joined to its match, candidate and image.

All SQL of reports, exports, takedown drafts and mail lives here, so they list
the same violations for the same filters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlmodel import Session, select

from monitor.errors import NotFound
from monitor.store.models import (
    Candidate,
    Collection,
    MatchRow,
    ProtectedImage,
    Scan,
    Violation,
)

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; naive values (SQLite drops the zone) are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class ReportItem:
    """One violation or review item with its match evidence, candidate and protected image.

    Coordinates (``region``, ``quad``) are pixels of the *original* candidate
    image; ``http_status`` and ``headers`` are those of the fetch that produced
    the candidate bytes (None for files and uploads); ``evidence_path`` is the
    archived copy of those bytes, relative to the data folder.
    """

    violation_id: int
    verdict: str
    rule: str
    severity: str
    status: str
    note: str
    created_at: datetime
    updated_at: datetime
    candidate_id: int
    scan_id: int | None
    source: str
    page_url: str | None
    candidate_sha256: str | None
    candidate_size: tuple[int, int] | None
    evidence_path: str | None
    http_status: int | None
    headers: dict[str, str] | None
    first_seen: datetime
    last_seen: datetime
    protected_id: int
    protected_path: str
    stored_path: str
    protected_sha256: str
    protected_size: tuple[int, int]
    collection: str
    meta: dict
    stage: str
    score: float
    distance: int | None
    cosine: float | None
    inliers: int | None
    agreement: float | None
    region: list[int] | None
    quad: list[list[float]] | None
    mirrored: bool

    @property
    def host(self) -> str | None:
        """Host name of the image URL, else of the page URL; None for local files."""
        for url in (self.source, self.page_url):
            host = urlsplit(url).hostname if url else None
            if host:
                return host.lower()
        return None

    @property
    def evidence(self) -> list[str]:
        """Each stage's evidence in plain words."""
        lines = []
        if self.distance is not None:
            lines.append(f"pHash Hamming distance {self.distance} of 64 bits")
        if self.cosine is not None:
            lines.append(f"cosine similarity {self.cosine:.2f}")
        if self.inliers is not None:
            lines.append(f"{self.inliers} RANSAC inliers")
        if self.agreement is not None:
            lines.append(f"{self.agreement:.0%} of the textured cells of the protected image "
                         "agree with the found image (dense check)")
        if self.mirrored:
            lines.append("mirrored copy")
        if self.region:
            x0, y0, x1, y1 = self.region
            lines.append(f"matched region x {x0}–{x1}, y {y0}–{y1} px on the found image")
        return lines


def query_items(session: Session, *, scan_id: int | None = None, collection: str | None = None,
                status: list[str] | None = None, severity: list[str] | None = None,
                since: datetime | None = None, until: datetime | None = None,
                violation_ids: list[int] | None = None) -> list[ReportItem]:
    """Violations and review items matching every filter, violations and severe ones first.

    ``since`` (inclusive) and ``until`` (exclusive) bound the violation's
    ``created_at``; naive values are taken as UTC. ``status`` and ``severity``
    are lists of accepted values (None or empty: any).
    """
    stmt = (select(Violation, MatchRow, Candidate, ProtectedImage, Collection)
            .join(MatchRow, Violation.match_id == MatchRow.id)
            .join(Candidate, Violation.candidate_id == Candidate.id)
            .join(ProtectedImage, Violation.protected_id == ProtectedImage.id)
            .join(Collection, ProtectedImage.collection_id == Collection.id))
    if scan_id is not None:
        stmt = stmt.where(Candidate.scan_id == scan_id)
    if collection is not None:
        stmt = stmt.where(Collection.name == collection)
    if status:
        stmt = stmt.where(Violation.status.in_(status))
    if severity:
        stmt = stmt.where(Violation.severity.in_(severity))
    if since is not None:
        stmt = stmt.where(Violation.created_at >= as_utc(since))
    if until is not None:
        stmt = stmt.where(Violation.created_at < as_utc(until))
    if violation_ids is not None:
        stmt = stmt.where(Violation.id.in_(violation_ids))
    items = [_item(*row) for row in session.exec(stmt).all()]
    return sorted(items, key=lambda i: (i.verdict != "violation",
                                        SEVERITY_RANK.get(i.severity.lower(), 9), -i.score,
                                        i.violation_id))


def get_item(session: Session, violation_id: int) -> ReportItem:
    """The item of one violation.

    Raises:
        NotFound: no violation has this id.
    """
    found = query_items(session, violation_ids=[violation_id])
    if not found:
        raise NotFound(f"violation {violation_id} not found")
    return found[0]


def query_scans(session: Session, scan_id: int | None, items: list[ReportItem]) -> list[Scan]:
    """The scans a report covers: the one asked for, those of its items, else the latest.

    Raises:
        NotFound: ``scan_id`` names no scan.
    """
    if scan_id is not None:
        scan = session.get(Scan, scan_id)
        if scan is None:
            raise NotFound(f"scan {scan_id} not found")
        return [scan]
    ids = {i.scan_id for i in items if i.scan_id is not None}
    if ids:
        return list(session.exec(select(Scan).where(Scan.id.in_(ids)).order_by(Scan.id)).all())
    latest = session.exec(select(Scan).order_by(Scan.id.desc())).first()
    return [latest] if latest else []


def _json(text: str | None) -> object:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _item(v: Violation, m: MatchRow, c: Candidate, p: ProtectedImage,
          col: Collection) -> ReportItem:
    meta, headers = _json(p.meta_json), _json(c.headers_json)
    return ReportItem(
        violation_id=v.id, verdict=v.verdict, rule=v.rule, severity=v.severity,
        status=v.status, note=v.note, created_at=as_utc(v.created_at),
        updated_at=as_utc(v.updated_at), candidate_id=c.id, scan_id=c.scan_id,
        source=c.source, page_url=c.page_url, candidate_sha256=c.sha256,
        candidate_size=(c.width, c.height) if c.width and c.height else None,
        evidence_path=c.evidence_path, http_status=c.http_status,
        headers={str(k): str(x) for k, x in headers.items()} if isinstance(headers, dict) else None,
        first_seen=as_utc(c.first_seen), last_seen=as_utc(c.last_seen),
        protected_id=p.id, protected_path=p.path, stored_path=p.stored_path,
        protected_sha256=p.sha256, protected_size=(p.width, p.height), collection=col.name,
        meta=meta if isinstance(meta, dict) else {}, stage=m.stage, score=m.score,
        distance=m.distance, cosine=m.cosine, inliers=m.inliers, agreement=m.agreement,
        region=_json(m.region_json),
        quad=_json(m.quad_json), mirrored=m.mirrored)
