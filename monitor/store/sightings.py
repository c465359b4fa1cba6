"""Repository of earlier sightings of candidates, for "unchanged means not re-checked".

:class:`CandidateSightings` answers discovery's questions over the ``candidate`` table:
the settled sightings of file paths (it satisfies
:class:`monitor.intake.crawl.folder.SeenFiles` structurally), and touching a settled
candidate seen again unchanged (a folder file, or a URL that answered 304).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from monitor.store.candidates import context_json
from monitor.store.models import Candidate, utcnow

SightingRow = tuple[int, str, int | None, datetime | None, str | None]
"""``(id, status, size_bytes, last_seen, sha256)`` of one candidate row."""


class CandidateSightings:
    """Settled candidate rows looked up by place (file path or URL) and touched.

    Args:
        session_factory: makes a new SQLModel :class:`Session` (``Store.session``).
    """

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session = session_factory

    def settled(self, paths: Sequence[str]) -> dict[str, list[SightingRow]]:
        """``{path: [(id, status, size_bytes, last_seen, sha256), ...]}`` of the candidates
        at ``paths`` that are not ``pending``, by id (one SELECT); unseen paths are missing."""
        if not paths:
            return {}
        q = (select(Candidate.source, Candidate.id, Candidate.status, Candidate.size_bytes,
                    Candidate.last_seen, Candidate.sha256)
             .where(Candidate.source.in_(list(paths)), Candidate.status != "pending")
             .order_by(Candidate.id))
        out: dict[str, list[SightingRow]] = {}
        with self._session() as s:
            for source, *row in s.exec(q).all():
                out.setdefault(source, []).append(tuple(row))
        return out

    def touch(self, ids: Sequence[int]) -> None:
        """Set ``last_seen`` of the candidates with these ids to now (one UPDATE)."""
        if not ids:
            return
        with self._session() as s:
            s.execute(update(Candidate).where(Candidate.id.in_(list(ids)))
                   .values(last_seen=utcnow()))
            s.commit()

    def touch_settled(self, location: str, sha256: str | None, page_url: str | None = None,
                      source_name: str | None = None,
                      context: dict[str, str] | None = None) -> int | None:
        """Touch the settled candidate with these bytes at ``location`` (``last_seen`` now;
        ``page_url``, ``source_name`` and the page ``context`` updated when given) and
        return its id; None when there is none (never seen, or still ``pending``: it must
        be checked)."""
        if not sha256:
            return None
        with self._session() as s:
            row = s.exec(select(Candidate).where(Candidate.source == location,
                                                 Candidate.sha256 == sha256)).first()
            if row is None or row.status == "pending":
                return None
            row.last_seen = utcnow()
            row.page_url = page_url or row.page_url
            row.source_name = source_name or row.source_name
            if context:
                row.context_json = context_json(context)
            s.add(row)
            s.commit()
            return row.id
