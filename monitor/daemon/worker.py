"""Queue workers: lease a job, check its candidate, store the result, complete the job.

A check is idempotent (the checker upserts the candidate by location and
sha256, matches by candidate × protected image, violations by match), so a
job re-run after a crash updates the same rows instead of duplicating them:
every accepted submission is checked *effectively once*. The result JSON (the
``check --format jsonl`` shape) is written to the blob store as
``results/<id[:2]>/<id>.json`` (under the data folder by default) before the job is marked
done, so a ``done`` check always has a result to show.

Jobs found by a scheduled source (``crawl``, ``file``) are fetched like ``monitor scan
SOURCE`` does (conditional GET; an unchanged image is not re-checked, its job is done
with the existing candidate's id and no result JSON). When a scan's last job is done
(or has failed for good) the worker closes the scan with its counts
(:func:`monitor.services.scans.close_if_idle`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from monitor.daemon.state import AppState
from monitor.errors import BlobNotFound, FetchError, MonitorError
from monitor.intake.crawl.base import Discovered
from monitor.outcome.jsonl import result_json
from monitor.services.check import CandidateInput, check_one
from monitor.services.scans import close_if_idle
from monitor.services.sources import fetch_or_touch
from monitor.services.workspace import Workspace
from monitor.store import queue
from monitor.store.models import Job
from monitor.types import CheckResult, PageContext, Verdict

log = logging.getLogger("monitor.worker")

POLL = 0.5
"""Seconds an idle worker waits before looking at the queue again (unless woken)."""


def result_key(job_id: str) -> str:
    """Blob key of the result JSON of job ``job_id`` (``results/<id[:2]>/<id>.json``)."""
    return f"results/{job_id[:2]}/{job_id}.json"


def load_result(ws: Workspace, job_id: str) -> dict[str, Any] | None:
    """The stored result of a finished job (from the blob store, which the api shares
    with the workers of other machines), or None when there is none or it is unreadable."""
    try:
        path = ws.blobs.local_path(result_key(job_id))
        raw = path.read_bytes() if path is not None else ws.blobs.get(result_key(job_id))
        return json.loads(raw)
    except (OSError, ValueError, MonitorError):
        return None


def job_context(job: Job) -> PageContext | None:
    """How the job's image appears on its page, from the job's ``metadata``: the keys
    ``page_title``, ``alt``, ``image_title`` and ``caption`` (put there by a scheduled
    source, or sent with ``POST /v1/submissions``), cleaned and capped; None when absent
    or unreadable."""
    try:
        meta = json.loads(job.metadata_json or "{}")
    except ValueError:
        return None
    return PageContext.from_dict(meta)


def candidate_input(ws: Workspace, job: Job) -> CandidateInput | int:
    """The :class:`~monitor.services.check.CandidateInput` a job stands for, or the id of
    the settled candidate it found unchanged.

    Uploads are named ``upload:<sha256>`` and read from the blob store (sniffed and
    hashed at intake, written content-addressed: neither is done again); a URL
    submission is fetched in full by the checker. ``crawl`` and ``file`` jobs (found by
    a source) go through :func:`monitor.services.sources.fetch_or_touch`, as in
    ``monitor scan SOURCE``: a URL is fetched conditionally and an image that answers
    304 and was already settled is not re-checked (its id is returned). Every kind carries
    the page context of its metadata (:func:`job_context`).
    """
    source_name, context = job.source, job_context(job)
    if job.kind == "submission":
        if job.path:
            item = CandidateInput(f"upload:{job.sha256}", page_url=job.page_url,
                                  source_name=source_name, sha256=job.sha256,
                                  spool=ws.blobs.local_path(job.path),  # None for S3
                                  sniffed=True, context=context)
            try:
                item.data = ws.blobs.get(job.path)
            except BlobNotFound as exc:
                item.error = FetchError(f"uploaded bytes are gone: {exc}")
            return item
        return CandidateInput(job.url or "", page_url=job.page_url, source_name=source_name,
                              context=context)
    return fetch_or_touch(ws, Discovered(job.url or job.path or "", job.page_url, context),
                          source_name)


def run_job(st: AppState, job: Job) -> CheckResult | int:
    """Check the job's candidate under the gallery read lock and store its result JSON.

    The bytes are had first, outside the lock (see :func:`candidate_input`).

    Returns:
        The check's result, or the candidate id of an unchanged image (not re-checked,
        no result JSON written).

    Raises:
        Exception: anything that stops the check (the caller records it on the job).
    """
    ws = st.ws
    item = candidate_input(ws, job)
    if isinstance(item, int):
        return item
    src = ws.settings.source(job.source) if job.kind != "submission" else None
    collection = (src.collection or None) if src else None
    with st.gallery_lock.read():
        result = check_one(ws, item, collection, scan_id=job.scan_id)
        doc = result_json(result, ws.gallery_info())
    _write_result(ws, job.id, json.dumps(doc).encode())
    return result


def _write_result(ws: Workspace, job_id: str, payload: bytes) -> None:
    """Store a result: in the data folder via a temporary file and rename, without fsync
    (survives a killed process; after an OS crash a result may be missing, GET then shows
    no ``result``, never a torn one); in an S3 blob store as one object."""
    path = ws.blobs.local_path(result_key(job_id))
    if path is None:
        ws.blobs.put(result_key(job_id), payload)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def process(st: AppState, name: str, job: Job, on_violation: Callable[[], None] | None = None
            ) -> str:
    """Run leased ``job`` (:func:`run_job`) and record the outcome on its row.

    Returns the job's new state: ``done``; ``queued`` (failed, retried after the
    backoff of ``queue.backoff``); ``error`` (failed its ``queue.max_attempts``-th
    lease: the dead-letter state); or ``lost`` (its lease was taken away meanwhile).
    ``on_violation`` is called after a check that found a violation.
    """
    db, metrics, q = st.ws.db, st.metrics, st.settings.queue
    start = time.perf_counter()
    try:
        outcome = run_job(st, job)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
        status = queue.fail(db, job, f"{type(exc).__name__}: {exc}", q.max_attempts, q.backoff)
        log.warning("%s: job %s failed (%s): %s", name, job.id, status, exc)
        metrics.checks.labels("failed").inc()
        if status == "error":  # its last attempt: the scan may be complete now
            _close_scan(st, job)
        return status
    took = time.perf_counter() - start
    if isinstance(outcome, int):  # unchanged since last seen: not re-checked
        candidate_id, verdict = outcome, None
    else:
        candidate_id, verdict = outcome.candidate_id, outcome.verdict
        metrics.check_seconds.observe(took)
        metrics.checks.labels(verdict.value).inc()
    log.info("%s: %s job %s from %s: candidate %s %s in %.0f ms", name, job.kind, job.id,
             job.source, candidate_id, verdict.value if verdict else "unchanged", 1000 * took)
    done = queue.complete(db, job, candidate_id)
    if done:
        _cleanup(st, job)
        _close_scan(st, job)
    if verdict == Verdict.VIOLATION and on_violation:
        on_violation()
    return "done" if done else "lost"


def _close_scan(st: AppState, job: Job) -> None:
    """Close the job's scan if this was its last active job (errors are logged)."""
    try:
        close_if_idle(st.ws, job.scan_id)
    except Exception:  # noqa: BLE001 - a scan left running must not stop the worker
        log.exception("closing scan %s failed", job.scan_id)


def _cleanup(st: AppState, job: Job) -> None:
    if job.kind == "submission" and job.path and job.path.startswith("uploads/"):
        st.ws.blobs.delete(job.path)


class InFlight:
    """The jobs a process's worker threads hold right now, to give back at shutdown."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    @contextmanager
    def held(self, job: Job) -> Iterator[None]:
        """Count ``job`` as in flight for the duration of the block."""
        with self._lock:
            self.jobs[job.id] = job
        try:
            yield
        finally:
            with self._lock:
                self.jobs.pop(job.id, None)

    def release_all(self, db) -> list[Job]:
        """Give every job still held back to the queue untouched
        (:func:`monitor.store.queue.release`); returns them."""
        with self._lock:
            left = list(self.jobs.values())
        for job in left:
            queue.release(db, job)
        return left


class Workers:
    """``n`` threads draining the embedded queue (the job table) until ``stop`` is set.

    ``on_violation`` is called (no arguments) after a check that found a
    violation, to wake the webhook sender.
    """

    def __init__(self, st: AppState, n: int, stop: threading.Event, lease_seconds: float = 300.0,
                 on_violation=None) -> None:
        self.st, self.n, self.stop = st, n, stop
        self.lease_seconds = lease_seconds
        self.on_violation = on_violation
        self.threads: list[threading.Thread] = []
        self.in_flight = InFlight()

    def start(self) -> None:
        """Start the worker threads."""
        for i in range(self.n):
            t = threading.Thread(target=self._loop, args=(f"worker-{i}",), name=f"worker-{i}",
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def alive(self) -> int:
        """Worker threads still running."""
        return sum(t.is_alive() for t in self.threads)

    def join(self, timeout: float) -> list[Job]:
        """Wait up to ``timeout`` s for workers to finish; release and return unfinished jobs."""
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return self.in_flight.release_all(self.st.ws.db)

    def _loop(self, name: str) -> None:
        db = self.st.ws.db
        while not self.stop.is_set():
            try:
                job = queue.lease(db, name, self.lease_seconds)
            except Exception:  # noqa: BLE001 - a locked or lost database: wait, retry
                log.exception("%s: lease failed", name)
                self.stop.wait(POLL)
                continue
            if job is None:
                self.st.wake.wait(POLL)
                self.st.wake.clear()
                continue
            with self.in_flight.held(job):
                process(self.st, name, job, self.on_violation)
