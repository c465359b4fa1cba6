"""Scans: one recorded run of the check pipeline over a folder or a configured source.

Every scan has the same lifecycle (:mod:`monitor.store.scans`): opened ``running``,
told what discovery found, closed ``finished`` or ``failed`` with counts taken from its
candidate rows. :class:`ScanRun` drives it for runs done here and now
(``monitor scan FOLDER`` through :func:`run_scan`, ``monitor scan SOURCE`` through
:func:`monitor.services.sources.run_source`); the daemon's scheduled runs queue their
work and close through :func:`close_if_idle` once the queue has checked it.
"""

from __future__ import annotations

from collections.abc import Callable

from monitor.intake.crawl.base import CrawlLog
from monitor.services.check import check
from monitor.services.workspace import Workspace
from monitor.store import scans as repo
from monitor.store.models import Scan
from monitor.types import CheckResult


def stages_note(ws: Workspace) -> str:
    """One line naming unavailable stages and why (loads the engine), recorded on the scan
    and in reports; '' when every enabled stage is available.

    Raises:
        StageUnavailable: a required stage cannot load.
    """
    bad = [s for s in ws.engine().statuses() if s.enabled and not s.available]
    return "; ".join(f"{s.name} unavailable: {s.reason}" for s in bad)


class ScanRun:
    """Context manager for one scan checked in this process.

    On enter, the stages note is taken (the engine loads; a required stage that cannot
    load raises :class:`~monitor.errors.StageUnavailable` before any scan is recorded)
    and the scan is opened. On exit, discovery's ``log`` (if any) is recorded and the
    scan closed: ``finished``, or ``failed`` with the exception's type and message when
    one escapes (it is re-raised). Afterwards :attr:`scan` is the closed row.

    Attributes:
        scan: the :class:`Scan` row (``running`` inside the block).
        log: discovery's log, or None for a plain folder scan.
        unchanged: images found unchanged (HTTP 304) and not re-checked; the caller
            counts them.
    """

    def __init__(self, ws: Workspace, source: str, kind: str,
                 log: CrawlLog | None = None) -> None:
        self.ws, self.source, self.kind, self.log = ws, source, kind, log
        self.unchanged = 0
        self._stages = ""
        self.scan: Scan | None = None

    def __enter__(self) -> ScanRun:
        self._stages = stages_note(self.ws)
        with self.ws.session() as s:
            self.scan = repo.open_scan(s, self.source, self.kind)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        note = f"{exc_type.__name__}: {exc}" if exc_type is not None else ""
        with self.ws.session() as s:
            if self.log is not None:
                repo.record_discovery(s, self.scan.id, self.log.summary(), len(self.log.errors))
            closed = repo.close_scan(s, self.scan.id, "failed" if exc_type else "finished",
                                     stages=self._stages, unchanged=self.unchanged, note=note)
        self.scan = closed or self.scan
        return False


def run_scan(ws: Workspace, source: str, kind: str = "folder", collection: str | None = None,
             progress: Callable[[CheckResult], None] | None = None
             ) -> tuple[Scan, list[CheckResult]]:
    """Check everything under ``source`` (a folder, file or URL) as one scan.

    Returns:
        ``(scan, results)``: the closed :class:`Scan` row with its counts, and one
        :class:`CheckResult` per candidate in input order.

    Raises:
        StageUnavailable: a required stage cannot load (no scan is recorded).
        NotFound: ``collection`` does not exist (the scan is marked ``failed``).
        Exception: whatever stops the scan is re-raised after marking it ``failed``
            with the reason.
    """
    results: list[CheckResult] = []
    with ScanRun(ws, source, kind) as run:
        for r in check(ws, [source], collection, scan_id=run.scan.id, progress=progress):
            results.append(r)
    return run.scan, results


def close_if_idle(ws: Workspace, scan_id: int | None, stages: bool = True) -> Scan | None:
    """Close a scan whose work went through the daemon's queue once none of its jobs is
    still queued or running (see :func:`monitor.store.scans.close_if_idle`).

    Args:
        stages: record the stages note (loads the engine; the queue workers have it
            loaded, the scheduler does not).

    Returns:
        The closed row, or None (no scan, jobs still active, or closed already).
    """
    if scan_id is None:
        return None
    note = stages_note(ws) if stages else ""
    with ws.session() as s:
        return repo.close_if_idle(s, scan_id, stages=note)
