"""The rows every output shares: a violation joined to its match, candidate and image.

Reports, exports, takedown drafts, mail and the dashboard build their
:class:`ReportItem` here from the store's one listing query
(:func:`monitor.store.violations.find_violations`), so they list the same
violations for the same filters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from monitor.errors import NotFound
from monitor.store.models import (
    Candidate,
    Collection,
    MatchRow,
    ProtectedImage,
    Scan,
    Violation,
)
from monitor.store.reports import report_scans
from monitor.store.violations import (
    SEVERITY_RANK,
    Order,
    ViolationFilter,
    as_utc,
    find_violations,
)
from monitor.types import PageContext

if TYPE_CHECKING:
    from sqlmodel import Session

__all__ = ["SEVERITY_RANK", "ReportItem", "as_utc", "get_item", "query_items", "query_scans"]

CONTEXT_KEYS = tuple(f.name for f in fields(PageContext))
"""Keys of a candidate's page context (``candidate.context_json``), in display order."""

CONTEXT_LABELS = {"page_title": "Page title", "alt": "Alt text", "image_title": "Image title",
                  "caption": "Caption"}
"""How each context key is named in reports, drafts and the dashboard."""

WHOLE = 0.98
"""An overlap share from which the legends say "the whole" (measured shares of untouched
copies are 0.998-1.0: the fitted homography's corners land within a pixel or two)."""


@dataclass(frozen=True)
class ReportItem:
    """One violation or review item with its match evidence, candidate and protected image.

    Coordinates (``region``, ``quad``) are pixels of the *original* candidate
    image, ``target_region`` of the original protected image; ``query_overlap`` and
    ``target_overlap`` are the shares in [0, 1] of the found image that is the copy and
    of the protected image that was copied (:class:`~monitor.types.Match`; None when
    unknown); ``http_status`` and ``headers`` are those of the fetch that produced
    the candidate bytes (None for files and uploads); ``evidence_path`` is the
    archived copy of those bytes, relative to the data folder; ``context`` is how the
    found image appears on ``page_url`` (keys of :data:`CONTEXT_KEYS`, plain text).
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
    query_overlap: float | None = None
    target_overlap: float | None = None
    target_region: list[int] | None = None
    context: dict[str, str] = field(default_factory=dict)

    @property
    def page_title(self) -> str | None:
        """The ``<title>`` of the page the image was found on, when known."""
        return self.context.get("page_title")

    @property
    def appearance(self) -> list[tuple[str, str]]:
        """How the image appears on its page: ``[(label, text)]`` of its alt text, image
        title and caption (the page title is :attr:`page_title`)."""
        return [(CONTEXT_LABELS[k], self.context[k]) for k in CONTEXT_KEYS[1:]
                if self.context.get(k)]

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
        if self.overlap_words:
            lines.append(self.overlap_words)
        if self.target_region:
            x0, y0, x1, y1 = self.target_region
            lines.append(f"copied part x {x0}–{x1}, y {y0}–{y1} px of the protected image")
        return lines

    @property
    def overlap_words(self) -> str | None:
        """The overlap both ways in words ("the copy fills 35% of the found image and
        reproduces 80% of the protected image"), or None when neither is known."""
        q, t = self.query_overlap, self.target_overlap
        parts = ([f"fills {q:.0%} of the found image"] if q is not None else []) + \
            ([f"reproduces {t:.0%} of the protected image"] if t is not None else [])
        return "the copy " + " and ".join(parts) if parts else None

    @property
    def found_legend(self) -> str | None:
        """What the outline on the found image shows, or None when nothing is drawn."""
        if not (self.quad or self.region):
            return None
        if self.query_overlap is not None and self.query_overlap >= WHOLE:
            return "outline: the whole found image is the copy"
        return "outline: where the protected image was found"

    @property
    def protected_legend(self) -> str | None:
        """What the outline on the protected image shows, or None when nothing is drawn."""
        if not self.target_region:
            return None
        if self.target_overlap is not None and self.target_overlap >= WHOLE:
            return "outline: all of the protected image was copied"
        return "outline: the part of the protected image that was copied"


def query_items(session: Session, *, scan_id: int | None = None, collection: str | None = None,
                status: list[str] | None = None, severity: list[str] | None = None,
                since: datetime | None = None, until: datetime | None = None,
                violation_ids: list[int] | None = None, verdict: str | None = None,
                order: Order = "rank", limit: int | None = None,
                offset: int = 0) -> list[ReportItem]:
    """Violations and review items matching every filter, as :class:`ReportItem`.

    ``since`` (inclusive) and ``until`` (exclusive) bound the violation's
    ``created_at``; naive values are taken as UTC. ``status`` and ``severity``
    are lists of accepted values (None or empty: any). ``order`` ``"rank"`` puts
    violations and severe ones first, ``"newest"`` the highest id first; ``limit``
    and ``offset`` page the sorted list (see :func:`monitor.store.violations.find_violations`).

    Raises:
        ValueError: ``order`` is not ``rank`` or ``newest``.
    """
    where = ViolationFilter(scan_id=scan_id, collection=collection, status=status,
                            severity=severity, verdict=verdict, since=since, until=until,
                            violation_ids=violation_ids)
    rows = find_violations(session, where, order=order, limit=limit, offset=offset)
    return [_item(*row) for row in rows]


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
    return report_scans(session, scan_id, {i.scan_id for i in items if i.scan_id is not None})


def _json(text: str | None) -> object:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def context_of(text: str | None) -> dict[str, str]:
    """The page context stored as ``text`` (``candidate.context_json``): its known keys
    with string values, cleaned (:meth:`PageContext.from_dict`); anything else (bad
    JSON, other keys) is dropped."""
    context = PageContext.from_dict(_json(text))
    return context.as_dict() if context is not None else {}


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
        quad=_json(m.quad_json), mirrored=m.mirrored, query_overlap=m.query_overlap,
        target_overlap=m.target_overlap, target_region=_json(m.target_region_json),
        context=context_of(c.context_json))
