"""Scans: one recorded run of the check pipeline over a source."""

from __future__ import annotations

from collections.abc import Callable

from monitor.services.check import check
from monitor.services.workspace import Workspace
from monitor.store.models import Scan, utcnow
from monitor.types import CheckResult, Verdict


def stages_note(ws: Workspace) -> str:
    """One line naming unavailable stages and why, recorded on the scan and in reports."""
    bad = [s for s in ws.engine().statuses() if s.enabled and not s.available]
    return "; ".join(f"{s.name} unavailable: {s.reason}" for s in bad)


def run_scan(ws: Workspace, source: str, kind: str = "folder", collection: str | None = None,
             progress: Callable[[CheckResult], None] | None = None
             ) -> tuple[Scan, list[CheckResult]]:
    """Check everything under ``source`` as one scan; the Scan row holds the counts.

    A failure that stops the scan (e.g. a required stage missing) marks it ``failed``
    with the reason and re-raises.
    """
    with ws.session() as s:
        scan = Scan(source=source, kind=kind, stages_note=stages_note(ws))
        s.add(scan)
        s.commit()
    results: list[CheckResult] = []
    try:
        for r in check(ws, [source], collection, scan_id=scan.id, progress=progress):
            results.append(r)
    except Exception as exc:
        _close(ws, scan, results, "failed", f"{type(exc).__name__}: {exc}")
        raise
    _close(ws, scan, results, "finished")
    return scan, results


def _close(ws: Workspace, scan: Scan, results: list[CheckResult], status: str,
           note: str = "") -> None:
    with ws.session() as s:
        scan = s.get(Scan, scan.id)
        scan.finished_at, scan.status = utcnow(), status
        scan.checked = sum(r.verdict != Verdict.ERROR for r in results)
        scan.errors = sum(r.verdict == Verdict.ERROR for r in results)
        scan.violations = sum(r.verdict == Verdict.VIOLATION for r in results)
        if note:
            scan.stages_note = "; ".join(x for x in (scan.stages_note, note) if x)
        s.add(scan)
        s.commit()
