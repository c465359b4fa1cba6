"""Repository of scans: one recorded run over a source, with one lifecycle.

Every scan (``monitor scan FOLDER``, ``monitor scan SOURCE`` and the daemon's
scheduled source runs) goes through the same three steps::

    open_scan ──► record_discovery ──► close_scan        (or close_if_idle: daemon)
    running                            finished / failed

and is counted the same way, from its candidate rows (:func:`count`): ``checked``
is every candidate of the scan with a verdict other than ``error``, ``errors`` the
candidates whose verdict is ``error`` plus what discovery failed on, ``violations``
those whose verdict is ``violation``. Candidates still ``pending`` (a check that
died) are not counted. The note (``stages_note``) collects, in order: unavailable
stages, discovery's summary, unchanged images not re-checked, and why a scan failed.
Times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlmodel import Session

from monitor.store.models import Candidate, Job, Scan, utcnow
from monitor.store.queue import ACTIVE
from monitor.types import Verdict


@dataclass(frozen=True)
class ScanCounts:
    """What a scan's candidates came to.

    Attributes:
        checked: candidates with a verdict other than ``error``.
        errors: candidates whose verdict is ``error``.
        violations: candidates whose verdict is ``violation``.
    """

    checked: int
    errors: int
    violations: int


def open_scan(s: Session, source: str, kind: str) -> Scan:
    """Insert a ``running`` scan and commit; returns it (detached, ``id`` set).

    Args:
        source: a source name or the folder scanned.
        kind: ``folder`` or the source kind (``urls``, ``page``, ``sitemap``, ``feed``).
    """
    scan = Scan(source=source, kind=kind)
    s.add(scan)
    s.commit()
    s.refresh(scan)
    return scan


def record_discovery(s: Session, scan_id: int, summary: str, errors: int) -> None:
    """Add discovery's one-line ``summary`` to the note of a running scan and count its
    ``errors`` (failures to fetch or parse pages, sitemaps, feeds, folders); commits.
    Called once per scan, when discovery is over."""
    scan = s.get(Scan, scan_id)
    if scan is None or scan.status != "running":
        return
    scan.stages_note = _join(scan.stages_note, summary)
    scan.errors = errors
    s.add(scan)
    s.commit()


def count(s: Session, scan_id: int) -> ScanCounts:
    """Count the scan's candidates by verdict (one SELECT); see the module docstring."""
    rows = s.execute(select(Candidate.verdict, func.count()).where(
        Candidate.scan_id == scan_id).group_by(Candidate.verdict)).all()
    n = {verdict: k for verdict, k in rows}
    errors = n.get(Verdict.ERROR.value, 0)
    checked = sum(k for verdict, k in n.items() if verdict not in (None, Verdict.ERROR.value))
    return ScanCounts(checked, errors, n.get(Verdict.VIOLATION.value, 0))


def close_scan(s: Session, scan_id: int, status: str = "finished", *, stages: str = "",
               unchanged: int = 0, note: str = "") -> Scan | None:
    """Close a running scan and commit.

    Sets ``status`` (``finished`` or ``failed``), ``finished_at`` (now, UTC), the counts
    (:func:`count`, plus the discovery errors recorded by :func:`record_discovery`) and
    the note: ``stages`` (unavailable stages) first, then discovery's summary, then
    ``unchanged`` (images that answered HTTP 304 and were not re-checked), then ``note``
    (why it failed).

    Returns:
        The closed row (detached), or None when the scan does not exist or is no longer
        running (closed already).
    """
    scan = s.get(Scan, scan_id)
    if scan is None or scan.status != "running":
        return None
    counts = count(s, scan_id)
    scan.checked, scan.violations = counts.checked, counts.violations
    scan.errors = (scan.errors or 0) + counts.errors  # discovery errors recorded so far
    scan.finished_at, scan.status = utcnow(), status
    extra = f"{unchanged} unchanged URL(s) (HTTP 304) not re-checked" if unchanged else ""
    scan.stages_note = _join(stages, scan.stages_note, extra, note)
    s.add(scan)
    s.commit()
    s.refresh(scan)
    return scan


def close_if_idle(s: Session, scan_id: int, stages: str = "") -> Scan | None:
    """Close a running scan whose work went through the queue once none of its jobs is
    queued or running (:func:`close_scan`, ``finished``). Its unchanged images are its
    done jobs whose candidate was not checked in this scan. Returns the closed row, or
    None when jobs are still active or the scan is not running."""
    active = s.execute(select(func.count()).select_from(Job).where(
        Job.scan_id == scan_id, Job.status.in_(ACTIVE))).scalar_one()
    if active:
        return None
    unchanged = s.execute(
        select(func.count()).select_from(Job)
        .outerjoin(Candidate, Job.candidate_id == Candidate.id)
        .where(Job.scan_id == scan_id, Job.status == "done", Job.kind != "submission",
               or_(Candidate.id.is_(None), Candidate.scan_id.is_(None),
                   Candidate.scan_id != scan_id))).scalar_one()
    return close_scan(s, scan_id, "finished", stages=stages, unchanged=unchanged)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
