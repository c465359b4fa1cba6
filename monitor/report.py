"""HTML reports: violations and review items from the store, as one self-contained file.

The report reads the database and the data folder only, never the stages. Each
item shows the protected image and the found image side by side, with the
matched area (projected quad, else region box) drawn into the found image's
pixels so it survives printing and e-mail; thumbnails are inlined as JPEG data
URIs, so the file needs no other asset. A missing or unreadable stored copy
becomes a placeholder with a note, never a crash.
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from PIL import Image, ImageDraw
from sqlmodel import Session, select

from monitor.errors import MonitorError, NotFound
from monitor.index.base import atomic_write
from monitor.store.models import (
    Candidate,
    Collection,
    MatchRow,
    ProtectedImage,
    Scan,
    Violation,
    utcnow,
)
from monitor.workspace import Workspace

TEMPLATES = Path(__file__).resolve().parent / "templates"
MARK_COLOUR = (255, 0, 255)
"""Colour (RGB) of the matched-area outline drawn into the found image."""
HALO_COLOUR = (255, 255, 255)
"""Colour of the thin halo under the outline, so it reads on dark and magenta areas alike."""
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(frozen=True)
class ReportItem:
    """One violation or review item with its match evidence, candidate and protected image.

    Coordinates (``region``, ``quad``) are pixels of the *original* candidate image.
    """

    violation_id: int
    verdict: str
    rule: str
    severity: str
    status: str
    created_at: datetime
    candidate_id: int
    scan_id: int | None
    source: str
    page_url: str | None
    candidate_sha256: str | None
    candidate_size: tuple[int, int] | None
    evidence_path: str | None
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
    region: list[int] | None
    quad: list[list[float]] | None
    mirrored: bool

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
        if self.mirrored:
            lines.append("mirrored copy")
        if self.region:
            x0, y0, x1, y1 = self.region
            lines.append(f"matched region x {x0}–{x1}, y {y0}–{y1} px on the found image")
        return lines


# -- queries (all SQL of the report lives here) ---------------------------------

def query_items(session: Session, *, scan_id: int | None = None, collection: str | None = None,
                status: list[str] | None = None) -> list[ReportItem]:
    """Violations and review items matching the filters, violations and severe ones first."""
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
    items = [_item(*row) for row in session.exec(stmt).all()]
    return sorted(items, key=lambda i: (i.verdict != "violation",
                                        SEVERITY_RANK.get(i.severity.lower(), 9), -i.score,
                                        i.violation_id))


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
    meta = _json(p.meta_json)
    return ReportItem(
        violation_id=v.id, verdict=v.verdict, rule=v.rule, severity=v.severity,
        status=v.status, created_at=v.created_at, candidate_id=c.id, scan_id=c.scan_id,
        source=c.source, page_url=c.page_url, candidate_sha256=c.sha256,
        candidate_size=(c.width, c.height) if c.width and c.height else None,
        evidence_path=c.evidence_path, first_seen=c.first_seen, last_seen=c.last_seen,
        protected_id=p.id, protected_path=p.path, stored_path=p.stored_path,
        protected_sha256=p.sha256, protected_size=(p.width, p.height), collection=col.name,
        meta=meta if isinstance(meta, dict) else {}, stage=m.stage, score=m.score,
        distance=m.distance, cosine=m.cosine, inliers=m.inliers, region=_json(m.region_json),
        quad=_json(m.quad_json), mirrored=m.mirrored)


# -- thumbnails --------------------------------------------------------------------

@dataclass(frozen=True)
class Thumb:
    """An inlined thumbnail (``src`` a data URI) or, when ``src`` is None, a placeholder."""

    src: str | None
    width: int = 0
    height: int = 0
    note: str = ""


def draw_match(image: Image.Image, original: tuple[int, int], quad: list | None,
               region: list | None) -> Image.Image:
    """Draw the matched area on a copy of ``image``.

    ``quad`` (four [x, y] corners, drawn as a closed polygon) or else ``region``
    ([x0, y0, x1, y1] box) are in pixels of the original image of size
    ``original`` (width, height); they are scaled to ``image``. The line is
    :data:`MARK_COLOUR`, about 1 % of the longest side wide (at least 3 px),
    over a 1 px-wider :data:`HALO_COLOUR` halo on each side.
    """
    out = image.copy()
    sx, sy = out.width / original[0], out.height / original[1]
    if quad and len(quad) >= 3:
        pts = [(float(x) * sx, float(y) * sy) for x, y in quad]
    elif region and len(region) == 4:
        x0, y0, x1, y1 = region
        pts = [(x0 * sx, y0 * sy), (x1 * sx, y0 * sy), (x1 * sx, y1 * sy), (x0 * sx, y1 * sy)]
    else:
        return out
    width = max(3, round(max(out.size) / 100))
    draw = ImageDraw.Draw(out)
    closed = [*pts, pts[0]]
    draw.line(closed, fill=HALO_COLOUR, width=width + 2, joint="curve")
    draw.line(closed, fill=MARK_COLOUR, width=width, joint="curve")
    return out


def _data_uri(image: Image.Image) -> str:
    """JPEG (quality 85, no chroma subsampling so thin coloured lines keep their colour)."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85, subsampling=0)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def make_thumb(ws: Workspace, rel: str | None, sha256: str | None, what: str,
               quad: list | None = None, region: list | None = None) -> Thumb:
    """Thumbnail (longest side ``report.thumb_side`` pixels) of a file under the data folder.

    The matched area is drawn when ``quad`` or ``region`` is given. The file's
    sha256 is checked against the recorded one and a mismatch is noted.
    """
    if not rel:
        return Thumb(None, note=f"no {what} was archived")
    path = ws.data_dir / rel
    if not path.is_file():
        return Thumb(None, note=f"{what} missing: {rel}")
    try:
        decoded = ws.load_stored(path)
    except (MonitorError, OSError) as exc:
        return Thumb(None, note=f"{what} unreadable ({rel}): {exc}")
    image = decoded.image.copy()
    side = ws.settings.report.thumb_side
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    image = draw_match(image, (decoded.width, decoded.height), quad, region)
    note = ""
    if sha256 and decoded.sha256 != sha256:
        note = f"{what} altered: its sha256 is {decoded.sha256}, not the recorded one"
    return Thumb(_data_uri(image), image.width, image.height, note)


# -- rendering ---------------------------------------------------------------------

def _utc(value: datetime) -> datetime:
    """``value`` in UTC; naive values (SQLite drops the zone) are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(value: datetime | None) -> str:
    """``YYYY-mm-dd HH:MM:SS UTC``, or a dash for None."""
    return _utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _href(url: str | None) -> str | None:
    """``url`` when it is http(s) and safe to link, else None (shown as text)."""
    return url if url and urlsplit(url).scheme.lower() in ("http", "https") else None


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["href"] = _href
    return env


def _summary(items: list[ReportItem], scans: list[Scan]) -> dict:
    """Totals and the time range shown in the header."""
    times = [_utc(t) for i in items for t in (i.first_seen, i.last_seen)]
    times = times or [_utc(t) for s in scans for t in (s.started_at, s.finished_at) if t]
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


def render_report(ws: Workspace, items: list[ReportItem], scans: list[Scan],
                  filters: dict[str, object]) -> str:
    """The report's HTML for ``items`` (thumbnails decoded and inlined here)."""
    cache: dict[tuple, Thumb] = {}

    def thumb(rel: str | None, sha: str | None, what: str, quad=None, region=None) -> Thumb:
        key = (rel, sha, what, json.dumps(quad), json.dumps(region))
        if key not in cache:
            cache[key] = make_thumb(ws, rel, sha, what, quad, region)
        return cache[key]

    rows = [(i, thumb(i.stored_path, i.protected_sha256, "stored protected copy"),
             thumb(i.evidence_path, i.candidate_sha256, "evidence file", i.quad, i.region))
            for i in items]
    return _environment().get_template("report.html.j2").render(
        rows=rows, scans=scans, summary=_summary(items, scans), generated=utcnow(),
        filters={k: v for k, v in filters.items() if v}, mark=MARK_COLOUR)


def _default_path(ws: Workspace) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path, n = ws.report_dir / f"report-{stamp}.html", 1
    while path.exists():
        n += 1
        path = ws.report_dir / f"report-{stamp}-{n}.html"
    return path


def write_report(ws: Workspace, *, scan_id: int | None = None, collection: str | None = None,
                 status: list[str] | None = None, out: Path | None = None) -> Path:
    """Render violations and review items into one self-contained HTML file.

    Filters: ``scan_id`` (candidates last seen by that scan), ``collection`` name,
    ``status`` (review states such as ``open``; None = every state). Written to
    ``out`` or ``<report dir>/report-YYYYmmdd-HHMMSS.html`` (UTC); returns the path.

    Raises:
        NotFound: ``scan_id`` names no scan.
    """
    with ws.session() as s:
        items = query_items(s, scan_id=scan_id, collection=collection, status=status)
        scans = query_scans(s, scan_id, items)
    filters = {"scan": scan_id, "collection": collection, "status": ", ".join(status or [])}
    html = render_report(ws, items, scans, filters)
    path = out or _default_path(ws)
    atomic_write(path, html.encode("utf-8"))
    return path
