"""``run_source``: discover a source's images and check them all as one recorded Scan.

The daemon instead puts :func:`~monitor.intake.crawl.discover.discover` output on its
queue; its workers can use :func:`fetch_candidate` to get the same conditional,
"unchanged means not re-checked" behaviour for each URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from sqlmodel import select

from monitor.config.daemon import SourceSettings
from monitor.errors import MonitorError
from monitor.intake.crawl.base import CrawlLog, Discovered
from monitor.intake.crawl.discover import discover
from monitor.intake.inputs import is_url
from monitor.services.check import CandidateInput, check_items
from monitor.services.scans import stages_note
from monitor.services.workspace import Workspace
from monitor.store.models import Candidate, Scan, utcnow
from monitor.types import CheckResult, Verdict

BATCH = 32
"""Candidates fetched, then checked, together."""

FETCH_THREADS = 4
"""Image downloads in flight per run (per-host limits still apply)."""


def fetch_candidate(ws: Workspace, found: Discovered,
                    source_name: str | None = None) -> CandidateInput | None:
    """The :class:`CandidateInput` for one discovered item, or None when it is unchanged.

    URLs are fetched with validators from ``FetchCache`` (RFC 9110 conditional
    GET). On 304, if the candidate with the cached sha256 was already settled,
    its ``last_seen`` (and page/source) are updated and None is returned: it is
    not re-checked. A fetch failure becomes the candidate's recorded error.
    Files are left for the checker to read.
    """
    item = CandidateInput(found.location, page_url=found.page_url, source_name=source_name)
    if not is_url(found.location):
        return item
    try:
        res = ws.fetcher.fetch(found.location, conditional=True)
        if res.not_modified:
            if _touch_unchanged(ws, found, res.cached_sha256, source_name):
                return None
            res = ws.fetcher.fetch(found.location)
    except MonitorError as exc:
        item.error = exc
        return item
    item.data, item.http_status, item.headers = res.body, res.status, res.headers
    return item


def _touch_unchanged(ws: Workspace, found: Discovered, sha: str | None,
                     source_name: str | None) -> bool:
    if not sha:
        return False
    with ws.session() as s:
        row = s.exec(select(Candidate).where(Candidate.source == found.location,
                                             Candidate.sha256 == sha)).first()
        if row is None or row.status == "pending":
            return False
        row.last_seen = utcnow()
        row.page_url = found.page_url or row.page_url
        row.source_name = source_name or row.source_name
        s.add(row)
        s.commit()
    return True


def _batches(items: Iterable[Discovered], size: int) -> Iterator[list[Discovered]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def run_source(ws: Workspace, source: SourceSettings,
               progress: Callable[[CheckResult], None] | None = None,
               collection: str | None = None) -> tuple[Scan, list[CheckResult]]:
    """Discover and check everything of ``source`` now, as one Scan (kind = source kind,
    source = source name). Candidates carry ``source_name`` and ``page_url``.

    The scan's note lists pages fetched, unchanged items not re-checked, and what
    discovery skipped or failed on; ``errors`` counts failed candidates plus
    discovery errors. A failure that stops the run marks the scan ``failed`` and
    re-raises.

    Args:
        collection: only match this collection (default: ``source.collection``).
    """
    with ws.session() as s:
        scan = Scan(source=source.name, kind=source.kind, stages_note=stages_note(ws))
        s.add(scan)
        s.commit()
    log = CrawlLog()
    results: list[CheckResult] = []
    unchanged = 0
    coll = collection or source.collection or None
    try:
        with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
            for batch in _batches(discover(ws, source, log), BATCH):
                items = list(pool.map(lambda d: fetch_candidate(ws, d, source.name), batch))
                ready = [it for it in items if it is not None]
                unchanged += len(items) - len(ready)
                results.extend(check_items(ws, ready, coll, scan.id, progress=progress))
    except Exception as exc:
        _close(ws, scan, results, log, unchanged, "failed", f"{type(exc).__name__}: {exc}")
        raise
    _close(ws, scan, results, log, unchanged, "finished")
    return scan, results


def _close(ws: Workspace, scan: Scan, results: list[CheckResult], log: CrawlLog,
           unchanged: int, status: str, note: str = "") -> None:
    crawl = log.summary()
    if unchanged:
        crawl += f"; {unchanged} unchanged URL(s) (HTTP 304) not re-checked"
    with ws.session() as s:
        row = s.get(Scan, scan.id)
        row.finished_at, row.status = utcnow(), status
        row.checked = sum(r.verdict != Verdict.ERROR for r in results)
        row.errors = sum(r.verdict == Verdict.ERROR for r in results) + len(log.errors)
        row.violations = sum(r.verdict == Verdict.VIOLATION for r in results)
        row.stages_note = "; ".join(x for x in (row.stages_note, crawl, note) if x)
        s.add(row)
        s.commit()
        s.refresh(row)
    for key in ("finished_at", "status", "checked", "errors", "violations", "stages_note"):
        setattr(scan, key, getattr(row, key))
