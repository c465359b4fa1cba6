"""Reports: violations and review items from the store, as HTML (one self-contained file),
JSON or CSV, per scan or as a digest over a period.

The report reads the database and the blob store only (stored copies and evidence,
:mod:`monitor.outcome.stored`), never the stages. Each HTML item shows the protected
image and the found image side by side, the matched area drawn into the found image's
pixels (:mod:`monitor.outcome.thumbs`), thumbnails inlined as JPEG data URIs, the fetch's
HTTP status and headers when known, and a link to the archived evidence copy (relative
when the blob store is a folder, see :func:`evidence_link`).
Templates can be overridden from ``report.templates_dir``.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from monitor.outcome import stored
from monitor.outcome.exports import to_csv, to_json
from monitor.outcome.items import (
    SEVERITY_RANK,
    ReportItem,
    as_utc,
    query_items,
    query_scans,
)
from monitor.outcome.templating import TEMPLATES, render
from monitor.outcome.thumbs import (
    HALO_COLOUR,
    MARK_COLOUR,
    Thumb,
    ThumbCache,
    draw_match,
    make_thumb,
)
from monitor.store import Store, write_atomic
from monitor.store.models import Scan, utcnow

__all__ = ["HALO_COLOUR", "MARK_COLOUR", "SEVERITY_RANK", "TEMPLATES", "ReportItem", "Thumb",
           "draw_match", "make_thumb", "query_items", "query_scans", "render_report",
           "write_report"]

Format = Literal["html", "json", "csv"]
FORMATS: tuple[str, ...] = ("html", "json", "csv")


def _summary(items: list[ReportItem], scans: list[Scan]) -> dict:
    """Totals and the time range shown in the header."""
    times = [as_utc(t) for i in items for t in (i.first_seen, i.last_seen)]
    times = times or [as_utc(t) for s in scans for t in (s.started_at, s.finished_at) if t]
    return {
        "items": len(items),
        "verdicts": Counter(i.verdict for i in items),
        "severities": Counter(i.severity for i in items),
        "statuses": Counter(i.status for i in items),
        "candidates": len({i.candidate_id for i in items}),
        "protected": len({i.protected_id for i in items}),
        "start": min(times, default=None),
        "end": max(times, default=None),
        "notes": list(dict.fromkeys(s.stages_note for s in scans if s.stages_note)),
    }


def evidence_link(ws: Store, rel: str | None, base: Path | None,
                  violation_id: int | None = None) -> str | None:
    """URL of the archived evidence file. When the blob store is a folder: relative to
    ``base`` (the report's folder), so the link survives moving the deployment; a ``file:``
    URI when ``base`` is None. When it is a bucket: the dashboard's download of
    ``violation_id`` under ``server.base_url`` when that is set, else the object's URL
    (``s3://…``, for tools that read the bucket).

    Raises:
        ValueError: ``rel`` is not a valid key.
        ConfigError: the blob store cannot be opened (``Store.blobs``).
    """
    if not rel:
        return None
    path = stored.local_file(ws, rel)
    if path is None:
        site = ws.settings.server.base_url.rstrip("/")
        if site and violation_id is not None:
            return f"{site}/violations/{violation_id}/evidence"
        return stored.location(ws, rel)
    target = path.absolute()
    if base is None:
        return target.as_uri()
    return quote(Path(os.path.relpath(target, base.absolute())).as_posix())


def render_report(ws: Store, items: list[ReportItem], scans: list[Scan],
                  filters: dict[str, object], *, link_base: Path | None = None,
                  period: tuple[datetime | None, datetime | None] | None = None) -> str:
    """The report's HTML for ``items`` (thumbnails decoded and inlined here).

    ``link_base`` is the folder the file will be written to (evidence links are
    made relative to it); ``period`` (start, end) titles the report as a digest.
    """
    cache = ThumbCache(ws)
    items = by_found_image(items)
    rows = [(i, *cache.pair(i), evidence_link(ws, i.evidence_path, link_base, i.violation_id))
            for i in items]
    return render(ws.settings, "report.html.j2", rows=rows, scans=scans,
                  summary=_summary(items, scans), generated=utcnow(),
                  filters={k: v for k, v in filters.items() if v}, mark=MARK_COLOUR,
                  period=period, siblings=siblings(items))


def by_found_image(items: list[ReportItem]) -> list[ReportItem]:
    """``items`` with the violations of one found image (candidate) next to each other, in
    the order of each image's first violation (a stable regrouping)."""
    first: dict[int, int] = {}
    for n, i in enumerate(items):
        first.setdefault(i.candidate_id, n)
    return sorted(items, key=lambda i: first[i.candidate_id])


def siblings(items: list[ReportItem]) -> dict[int, list[ReportItem]]:
    """``{violation id: the other violations of the same found image}``, for the found
    images that match several protected images (a collage, or one artwork registered
    twice): the report lists every matching protected image under each."""
    groups: dict[int, list[ReportItem]] = {}
    for i in items:
        groups.setdefault(i.candidate_id, []).append(i)
    return {i.violation_id: [o for o in g if o is not i]
            for g in groups.values() if len(g) > 1 for i in g}


def _default_path(ws: Store, fmt: str, prefix: str = "report") -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path, n = ws.report_dir / f"{prefix}-{stamp}.{fmt}", 1
    while path.exists():
        n += 1
        path = ws.report_dir / f"{prefix}-{stamp}-{n}.{fmt}"
    return path


def write_report(ws: Store, *, scan_id: int | None = None, collection: str | None = None,
                 status: list[str] | None = None, out: Path | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 severity: list[str] | None = None, format: Format = "html") -> Path:
    """Write violations and review items as one self-contained HTML file, or JSON or CSV.

    Filters: ``scan_id`` (candidates last seen by that scan), ``collection`` name,
    ``status`` (review states such as ``open``; None = every state), ``severity``
    (rule severities), ``since``/``until`` (violation created at, UTC, end
    exclusive: a digest period). Written to ``out`` or
    ``<report dir>/report-YYYYmmdd-HHMMSS.<format>`` (UTC); returns the path.

    Raises:
        NotFound: ``scan_id`` names no scan.
        ValueError: ``format`` is not html, json or csv.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown report format {format!r}; use one of {', '.join(FORMATS)}")
    with ws.session() as s:
        items = query_items(s, scan_id=scan_id, collection=collection, status=status,
                            severity=severity, since=since, until=until)
        scans = query_scans(s, scan_id, items) if format == "html" else []
    filters = {"scan": scan_id, "collection": collection, "status": ", ".join(status or []),
               "severity": ", ".join(severity or []),
               "since": as_utc(since).isoformat() if since else None,
               "until": as_utc(until).isoformat() if until else None}
    path = out or _default_path(ws, format)
    if format == "json":
        text = to_json(ws, items, generated=utcnow(), filters=filters)
    elif format == "csv":
        text = to_csv(ws, items)
    else:
        period = (since, until) if since or until else None
        text = render_report(ws, items, scans, filters, link_base=path.parent, period=period)
    write_atomic(path, text.encode("utf-8"))
    return path
