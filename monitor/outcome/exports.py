"""The report's rows as JSON and CSV, for spreadsheets, case files and other tools.

One row per violation, the same rows (same query, same order) as the HTML
report for the same filters. Timestamps are ISO 8601 in UTC; ``region`` is
[x0, y0, x1, y1] and ``quad`` four [x, y] corners, in pixels of the found image;
``target_region`` [x0, y0, x1, y1] the copied part of the protected image, in its pixels;
``query_overlap`` and ``target_overlap`` the shares in [0, 1] of the found image that is
the copy and of the protected image that was copied; ``distance`` is the pHash Hamming
distance in bits of 64; ``evidence_file`` where the evidence is stored (its path when the
blob store is a folder, else its ``s3://`` URL); ``page_title``, ``alt``, ``image_title`` and
``caption`` how the found image appears on ``page_url`` (plain text written by whoever runs
that page: in CSV, one that starts with ``=``, ``+``, ``-``, ``@`` gets a leading ``'`` so a
spreadsheet shows it instead of evaluating it, see :func:`text_cell`). In CSV, structured
values (region, quad, headers, meta) are JSON text and missing values are empty.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from monitor.outcome.items import CONTEXT_KEYS, ReportItem
from monitor.outcome.stored import location
from monitor.store import Store

COLUMNS = (
    "violation_id", "verdict", "status", "rule", "severity", "note", "created_at", "updated_at",
    "collection", "protected_id", "protected_path", "protected_sha256", "protected_width",
    "protected_height", "candidate_id", "scan_id", "source", "page_url", "host",
    "candidate_sha256", "candidate_width", "candidate_height", "http_status", "headers",
    "first_seen", "last_seen", "evidence_path", "evidence_file", "stage", "score", "distance",
    "cosine", "inliers", "agreement", "mirrored", "region", "quad", "query_overlap",
    "target_overlap", "target_region", "meta", "page_title", "alt", "image_title", "caption",
)
"""Columns of every export, in order."""


def _iso(value: datetime) -> str:
    return value.isoformat()


def item_row(ws: Store, item: ReportItem) -> dict[str, object]:
    """One item as a flat dict keyed by :data:`COLUMNS` (JSON-ready values).

    Raises:
        ConfigError: the blob store cannot be opened (``Store.blobs``).
    """
    cw, ch = item.candidate_size or (None, None)
    return {
        "violation_id": item.violation_id, "verdict": item.verdict, "status": item.status,
        "rule": item.rule, "severity": item.severity, "note": item.note,
        "created_at": _iso(item.created_at), "updated_at": _iso(item.updated_at),
        "collection": item.collection, "protected_id": item.protected_id,
        "protected_path": item.protected_path, "protected_sha256": item.protected_sha256,
        "protected_width": item.protected_size[0], "protected_height": item.protected_size[1],
        "candidate_id": item.candidate_id, "scan_id": item.scan_id, "source": item.source,
        "page_url": item.page_url, "host": item.host, "candidate_sha256": item.candidate_sha256,
        "candidate_width": cw, "candidate_height": ch, "http_status": item.http_status,
        "headers": item.headers, "first_seen": _iso(item.first_seen),
        "last_seen": _iso(item.last_seen), "evidence_path": item.evidence_path,
        "evidence_file": location(ws, item.evidence_path) if item.evidence_path else None,
        "stage": item.stage, "score": item.score, "distance": item.distance,
        "cosine": item.cosine, "inliers": item.inliers, "agreement": item.agreement,
        "mirrored": item.mirrored,
        "region": item.region, "quad": item.quad, "query_overlap": item.query_overlap,
        "target_overlap": item.target_overlap, "target_region": item.target_region,
        "meta": item.meta,
        **{k: item.context.get(k) for k in CONTEXT_KEYS},
    }


def to_json(ws: Store, items: list[ReportItem], *, generated: datetime,
            filters: dict[str, object]) -> str:
    """``{"generated_at", "filters", "count", "items": [row, ...]}`` as indented JSON."""
    doc = {"generated_at": _iso(generated),
           "filters": {k: v for k, v in filters.items() if v not in (None, "", [])},
           "count": len(items), "items": [item_row(ws, i) for i in items]}
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


def csv_cell(value: object) -> str:
    """A value as CSV text: nothing for None, compact JSON for dicts, lists and tuples,
    ``true``/``false`` for booleans."""
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection)."""


def text_cell(value: str | None) -> str:
    """Third-party text as a CSV cell a spreadsheet will not evaluate: ``'`` put before a
    value that starts like a formula."""
    if not value:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def guarded(row: dict[str, object]) -> dict[str, object]:
    """An :func:`item_row` for CSV: its page text (third-party, :data:`CONTEXT_KEYS`) made
    safe for spreadsheets with :func:`text_cell`."""
    return row | {k: text_cell(row.get(k)) for k in CONTEXT_KEYS}


def to_csv(ws: Store, items: list[ReportItem]) -> str:
    """RFC 4180 CSV (CRLF line ends, header row of :data:`COLUMNS`)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for item in items:
        row = guarded(item_row(ws, item))
        writer.writerow([csv_cell(row[c]) for c in COLUMNS])
    return buf.getvalue()
