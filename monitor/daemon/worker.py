"""Queue workers: lease a job, check its candidate, store the result, complete the job.

A check is idempotent (the checker upserts the candidate by location and
sha256, matches by candidate × protected image, violations by match), so a
job re-run after a crash updates the same rows instead of duplicating them:
every accepted submission is checked *effectively once*. The result JSON (the
``check --format jsonl`` shape) is written to ``<data>/results/<id[:2]>/<id>.json``
before the job is marked done, so ``done`` always has a result to show.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from monitor.daemon.state import AppState
from monitor.errors import FetchError
from monitor.outcome.jsonl import result_json
from monitor.services.workspace import Workspace
from monitor.store import queue
from monitor.store.models import Candidate, Job, Scan, utcnow
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


def candidate_input(ws: Workspace, job: Job):
    """The :class:`~monitor.services.check.CandidateInput` a job stands for.

    Uploads are named ``upload:<sha256>``; URLs and files by themselves.
    """
    from monitor.services.check import CandidateInput

    source_name = job.source
    if job.path and job.kind == "submission":
        item = CandidateInput(f"upload:{job.sha256}", page_url=job.page_url,
                              source_name=source_name)
        try:
            item.data = (ws.data_dir / job.path).read_bytes()
        except OSError as exc:
            item.error = FetchError(f"uploaded bytes are gone: {exc}")
        return item
    return CandidateInput(job.url or job.path or "", page_url=job.page_url,
                          source_name=source_name)


def run_job(st: AppState, job: Job) -> CheckResult:
    """Check the job's candidate under the gallery read lock and store its result JSON."""
    from monitor.services.check import check_one

    ws = st.ws
    src = ws.settings.source(job.source) if job.kind != "submission" else None
    collection = (src.collection or None) if src else None
    with st.gallery_lock.read():
        result = check_one(ws, candidate_input(ws, job), collection, scan_id=job.scan_id)
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


def close_scan_if_done(ws: Workspace, scan_id: int | None) -> None:
    """Mark a source run finished (with counts) once none of its jobs is active."""
    if scan_id is None:
        return
    with ws.session() as s:
        active = s.execute(select(func.count()).select_from(Job).where(
            Job.scan_id == scan_id, Job.status.in_(queue.ACTIVE))).scalar_one()
        scan = s.get(Scan, scan_id)
        if active or scan is None or scan.status != "running":
            return
        rows = s.execute(select(Candidate.verdict, func.count()).where(
            Candidate.scan_id == scan_id).group_by(Candidate.verdict)).all()
        n = {v: c for v, c in rows}
        scan.errors = n.get(Verdict.ERROR.value, 0)
        scan.violations = n.get(Verdict.VIOLATION.value, 0)
        scan.checked = sum(n.values()) - scan.errors
        scan.finished_at, scan.status = utcnow(), "finished"
        s.add(scan)
        s.commit()


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
            result = run_job(self.st, job)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
            status = queue.fail(db, job, f"{type(exc).__name__}: {exc}")
            log.warning("%s: job %s failed (%s): %s", name, job.id, status, exc)
            metrics.checks.labels("failed").inc()
            return
        metrics.check_seconds.observe(time.perf_counter() - start)
        metrics.checks.labels(result.verdict.value).inc()
        if queue.complete(db, job, result.candidate_id):
            self._cleanup(job)
            close_scan_if_done(self.st.ws, job.scan_id)
        if result.verdict == Verdict.VIOLATION and self.on_violation:
            self.on_violation()

    def _cleanup(self, job: Job) -> None:
        if job.kind == "submission" and job.path and job.path.startswith("uploads/"):
            (self.st.ws.data_dir / job.path).unlink(missing_ok=True)
