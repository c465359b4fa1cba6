"""Queue workers: lease a job, check its candidate, store the result, complete the job.

A check is idempotent (the checker upserts the candidate by location and
sha256, matches by candidate × protected image, violations by match), so a
job re-run after a crash updates the same rows instead of duplicating them:
every accepted submission is checked *effectively once*. The result JSON (the
``check --format jsonl`` shape) is written to ``<data>/results/<id[:2]>/<id>.json``
before the job is marked done, so a ``done`` check always has a result to show.

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
from pathlib import Path
from typing import Any

from monitor.daemon.state import AppState
from monitor.errors import FetchError
from monitor.intake.crawl.base import Discovered
from monitor.outcome.jsonl import result_json
from monitor.services.check import CandidateInput, check_one
from monitor.services.scans import close_if_idle
from monitor.services.sources import fetch_or_touch
from monitor.services.workspace import Workspace
from monitor.store import queue
from monitor.store.models import Job
from monitor.types import CheckResult, Verdict

log = logging.getLogger("monitor.worker")

POLL = 0.5
"""Seconds an idle worker waits before looking at the queue again (unless woken)."""


def result_path(ws: Workspace, job_id: str) -> Path:
    """Where the result JSON of job ``job_id`` is kept."""
    return ws.data_dir / "results" / job_id[:2] / f"{job_id}.json"


def load_result(ws: Workspace, job_id: str) -> dict[str, Any] | None:
    """The stored result of a finished job, or None."""
    try:
        return json.loads(result_path(ws, job_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def candidate_input(ws: Workspace, job: Job) -> CandidateInput | int:
    """The :class:`~monitor.services.check.CandidateInput` a job stands for, or the id of
    the settled candidate it found unchanged.

    Uploads are named ``upload:<sha256>`` and read from the data folder (sniffed and
    hashed at intake, written content-addressed: neither is done again); a URL
    submission is fetched in full by the checker. ``crawl`` and ``file`` jobs (found by
    a source) go through :func:`monitor.services.sources.fetch_or_touch`, as in
    ``monitor scan SOURCE``: a URL is fetched conditionally and an image that answers
    304 and was already settled is not re-checked (its id is returned).
    """
    source_name = job.source
    if job.kind == "submission":
        if job.path:
            spool = ws.data_dir / job.path
            item = CandidateInput(f"upload:{job.sha256}", page_url=job.page_url,
                                  source_name=source_name, sha256=job.sha256, spool=spool,
                                  sniffed=True)
            try:
                item.data = spool.read_bytes()
            except OSError as exc:
                item.error = FetchError(f"uploaded bytes are gone: {exc}")
            return item
        return CandidateInput(job.url or "", page_url=job.page_url, source_name=source_name)
    return fetch_or_touch(ws, Discovered(job.url or job.path or "", job.page_url), source_name)


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
    _write_result(result_path(ws, job.id), json.dumps(doc).encode())
    return result


def _write_result(path: Path, payload: bytes) -> None:
    """Write via a temporary file and rename, without fsync: survives a killed process;
    after an OS crash a result may be missing (GET then shows no ``result``), never torn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


class Workers:
    """``n`` threads draining the queue until ``stop`` is set.

    ``on_violation`` is called (no arguments) after a check that found a
    violation, to wake the webhook sender.
    """

    def __init__(self, st: AppState, n: int, stop: threading.Event, lease_seconds: float = 300.0,
                 on_violation=None) -> None:
        self.st, self.n, self.stop = st, n, stop
        self.lease_seconds = lease_seconds
        self.on_violation = on_violation
        self.threads: list[threading.Thread] = []
        self.in_flight: dict[str, Job] = {}
        self._lock = threading.Lock()

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
        with self._lock:
            left = list(self.in_flight.values())
        for job in left:
            queue.release(self.st.ws.db, job)
        return left

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
            with self._lock:
                self.in_flight[job.id] = job
            try:
                self._process(name, job)
            finally:
                with self._lock:
                    self.in_flight.pop(job.id, None)

    def _process(self, name: str, job: Job) -> None:
        db, metrics = self.st.ws.db, self.st.metrics
        start = time.perf_counter()
        try:
            outcome = run_job(self.st, job)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
            status = queue.fail(db, job, f"{type(exc).__name__}: {exc}")
            log.warning("%s: job %s failed (%s): %s", name, job.id, status, exc)
            metrics.checks.labels("failed").inc()
            if status == "error":  # its last attempt: the scan may be complete now
                self._close_scan(job)
            return
        took = time.perf_counter() - start
        if isinstance(outcome, int):  # unchanged since last seen: not re-checked
            candidate_id, verdict = outcome, None
        else:
            candidate_id, verdict = outcome.candidate_id, outcome.verdict
            metrics.check_seconds.observe(took)
            metrics.checks.labels(verdict.value).inc()
        log.info("%s: %s job %s from %s: candidate %s %s in %.0f ms", name, job.kind, job.id,
                 job.source, candidate_id, verdict.value if verdict else "unchanged",
                 1000 * took)
        if queue.complete(db, job, candidate_id):
            self._cleanup(job)
            self._close_scan(job)
        if verdict == Verdict.VIOLATION and self.on_violation:
            self.on_violation()

    def _close_scan(self, job: Job) -> None:
        """Close the job's scan if this was its last active job (errors are logged)."""
        try:
            close_if_idle(self.st.ws, job.scan_id)
        except Exception:  # noqa: BLE001 - a scan left running must not stop the worker
            log.exception("closing scan %s failed", job.scan_id)

    def _cleanup(self, job: Job) -> None:
        if job.kind == "submission" and job.path and job.path.startswith("uploads/"):
            (self.st.ws.data_dir / job.path).unlink(missing_ok=True)
