"""Building alert and digest e-mails with the standard ``email`` package.

Structure (RFC 2045/2046 MIME, RFC 2387 multipart/related)::

    multipart/alternative
    ├── text/plain            the same facts and links, readable anywhere
    └── multipart/related
        ├── text/html         <img src="cid:…"> for each thumbnail
        └── image/jpeg …      one part per thumbnail, Content-ID <…>, inline

Headers follow RFC 5322 (Date, Message-ID) plus ``Auto-Submitted:
auto-generated`` (RFC 3834) so auto-responders stay quiet. Thumbnails are the
report's (:mod:`monitor.outcome.thumbs`): protected vs found with the matched
area drawn. At most :data:`MAX_INLINE` items carry images; the rest are listed.
Templates ``mail.html.j2`` and ``mail.txt.j2`` can be overridden like the report's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from monitor.outcome.items import ReportItem
from monitor.outcome.templating import render
from monitor.outcome.thumbs import MARK_COLOUR, Thumb, ThumbCache
from monitor.store import Store
from monitor.store.models import utcnow

MAX_INLINE = 20
"""Items per message shown with thumbnails; later ones are listed as text."""
MAIL_THUMB_SIDE = 360
"""Longest side (pixels) of mailed thumbnails."""


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip("<> ") or "monitor.localhost"


class _Images:
    """Collects inline parts, one per distinct thumbnail, and hands out ``cid:`` URLs."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.parts: dict[bytes, str] = {}

    def cid(self, thumb: Thumb) -> Thumb:
        """``thumb`` with ``src`` pointing at its inline part (placeholders unchanged)."""
        if thumb.data is None:
            return thumb
        if thumb.data not in self.parts:
            self.parts[thumb.data] = make_msgid(f"thumb{len(self.parts) + 1}", self.domain)[1:-1]
        return replace(thumb, src=f"cid:{self.parts[thumb.data]}")


def detail_url(ws: Store, violation_id: int) -> str | None:
    """Link to the violation on the dashboard when ``server.base_url`` is set."""
    base = ws.settings.server.base_url.rstrip("/")
    return f"{base}/violations/{violation_id}" if base else None


def build_message(ws: Store, *, kind: str, subject: str, items: list[ReportItem],
                  recipients: list[str], period: tuple[datetime, datetime] | None = None,
                  report_path: Path | None = None, now: datetime | None = None) -> EmailMessage:
    """An alert (``kind="alert"``, usually one item) or digest message, ready to send."""
    sender = ws.settings.smtp.sender
    images = _Images(_domain(sender))
    cache = ThumbCache(ws, side=min(MAIL_THUMB_SIDE, ws.settings.report.thumb_side))
    rows = []
    for n, item in enumerate(items):
        pair = tuple(images.cid(t) for t in cache.pair(item)) if n < MAX_INLINE else (None, None)
        rows.append((item, *pair, detail_url(ws, item.violation_id)))
    context = {"kind": kind, "subject": subject, "rows": rows, "period": period,
               "report_path": str(report_path) if report_path else None,
               "generated": now or utcnow(), "mark": MARK_COLOUR,
               "inline": min(len(items), MAX_INLINE)}
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now or utcnow())
    msg["Message-ID"] = make_msgid(kind, _domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(render(ws.settings, "mail.txt.j2", **context))
    msg.add_alternative(render(ws.settings, "mail.html.j2", **context), subtype="html")
    html_part = msg.get_payload()[1]
    for n, (data, cid) in enumerate(images.parts.items(), 1):
        html_part.add_related(data, "image", "jpeg", cid=f"<{cid}>", disposition="inline",
                              filename=f"thumb{n}.jpg")
    return msg


def alert_subject(item: ReportItem) -> str:
    """``[monitor] violation #12 (high): Astronaut found at shop.example``."""
    title = item.meta.get("title") or Path(item.protected_path).name
    return (f"[monitor] {item.verdict} #{item.violation_id} ({item.severity}): {title} "
            f"found at {item.host or item.source}")


def digest_subject(items: list[ReportItem], start: datetime, end: datetime) -> str:
    """``[monitor] digest 2024-05-01 08:00 to 2024-05-02 08:00 UTC: 3 new``."""
    fmt = "%Y-%m-%d %H:%M"
    return (f"[monitor] digest {start.strftime(fmt)} to {end.strftime(fmt)} UTC: "
            f"{len(items)} new")
