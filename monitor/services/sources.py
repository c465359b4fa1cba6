"""Configured sources: discovery wired to this deployment, conditional fetching, and
``run_source`` (check a source now as one recorded scan).

:func:`discover` hands :func:`monitor.intake.crawl.discover` what it needs (the
workspace's fetcher, the deployment root, the candidate table as the record of files
already seen). :func:`fetch_or_touch` fetches one discovered image conditionally (RFC
9110 ``If-None-Match`` / ``If-Modified-Since`` from ``FetchCache``): an image that
answers 304 and was already settled is not re-checked. ``monitor scan SOURCE``
(:func:`run_source`) and the daemon's queue workers (``crawl`` and ``file`` jobs) both
use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from monitor.config.daemon import SourceSettings
from monitor.errors import MonitorError
from monitor.intake import crawl
from monitor.intake.crawl.base import CrawlLog, Discovered
from monitor.intake.inputs import is_url
from monitor.services.check import CandidateInput, check_items
from monitor.services.scans import ScanRun
from monitor.services.workspace import Workspace
from monitor.store.models import Scan
from monitor.store.sightings import CandidateSightings
from monitor.types import CheckResult

BATCH = 32
"""Candidates fetched, then checked, together."""

FETCH_THREADS = 4
"""Image downloads in flight per run (per-host limits still apply)."""


def discover(ws: Workspace, source: SourceSettings,
             log: CrawlLog | None = None) -> Iterator[Discovered]:
    """Yield each candidate of ``source`` once, at most ``source.max_images``, without
    fetching the images (see :func:`monitor.intake.crawl.discover`).

    Pages, sitemaps and feeds go through ``ws.fetcher``; ``folder`` locations are
    resolved against the deployment root, and files whose settled candidate shows them
    unchanged are skipped (their ``last_seen`` touched). What could not be done goes to
    ``log``.
    """
    fetcher = ws.fetcher if source.kind != "folder" else None
    return crawl.discover(source, fetcher, log, resolve=ws.settings.path,
                          seen=CandidateSightings(ws.session))


def fetch_or_touch(ws: Workspace, found: Discovered,
                   source_name: str | None = None) -> CandidateInput | int:
    """The :class:`CandidateInput` for one discovered item, or the id of its settled
    candidate when the image is unchanged.

    URLs are fetched with validators from ``FetchCache`` (a conditional GET). On 304,
    if the candidate with the cached sha256 was already settled, its ``last_seen`` (and
    ``page_url`` / ``source_name`` / page context) are updated and its id is returned: it
    is not re-checked; otherwise the URL is fetched again in full. A fetch failure becomes the
    input's ``error`` (recorded as the candidate's state). Files are left for the
    checker to read. The item carries ``found.context`` (how the image appears on its
    page) to the candidate row.
    """
    item = CandidateInput(found.location, page_url=found.page_url, source_name=source_name,
                          context=found.context)
    if not is_url(found.location):
        return item
    try:
        res = ws.fetcher.fetch(found.location, conditional=True)
        if res.not_modified:
            seen = CandidateSightings(ws.session).touch_settled(
                found.location, res.cached_sha256, found.page_url, source_name,
                found.context.as_dict() if found.context else None)
            if seen is not None:
                return seen
            res = ws.fetcher.fetch(found.location)
    except MonitorError as exc:
        item.error = exc
        return item
    item.data, item.http_status, item.headers = res.body, res.status, res.headers
    return item


def _batches(items: Iterable[Discovered], size: int) -> Iterator[list[Discovered]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def run_source(ws: Workspace, source: SourceSettings,
               progress: Callable[[CheckResult | None], None] | None = None,
               collection: str | None = None,
               discovered: Callable[[int], None] | None = None
               ) -> tuple[Scan, list[CheckResult]]:
    """Discover and check everything of ``source`` now, as one scan (kind = source kind,
    source = source name; see :class:`~monitor.services.scans.ScanRun`). Candidates carry
    ``source_name`` and ``page_url``.

    The scan's note lists pages fetched, unchanged items not re-checked, and what
    discovery skipped or failed on; ``errors`` counts failed candidates plus discovery
    errors.

    Args:
        collection: only match this collection (default: ``source.collection``).
        discovered: told how many more items discovery found, batch by batch (a crawl
            finds its total as it goes), before they are fetched and checked;
            ``progress`` is then called once per item checked, and with None per item
            found unchanged.

    Returns:
        ``(scan, results)``: the closed scan row and one result per checked candidate.

    Raises:
        StageUnavailable: a required stage cannot load (no scan is recorded).
        Exception: whatever stops the run is re-raised after marking the scan ``failed``.
    """
    log = CrawlLog()
    results: list[CheckResult] = []
    coll = collection or source.collection or None
    with ScanRun(ws, source.name, source.kind, log) as run, \
            ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        for batch in _batches(discover(ws, source, log), BATCH):
            if discovered:
                discovered(len(batch))
            got = list(pool.map(lambda d: fetch_or_touch(ws, d, source.name), batch))
            ready = [g for g in got if not isinstance(g, int)]
            run.unchanged += len(got) - len(ready)
            if progress and discovered:  # unchanged items count as done for the total
                for _ in range(len(got) - len(ready)):
                    progress(None)
            results.extend(check_items(ws, ready, coll, run.scan.id, progress=progress))
    return run.scan, results
