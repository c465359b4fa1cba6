"""The durable work queue over the :class:`~monitor.store.models.Job` table.

One row per unit of work (an HTTP submission, a URL found by a source, a file
of a folder source). States::

    queued ──lease──► running ──complete──► done
      ▲                  │
      └──fail (retry)────┤──fail (attempts exhausted)──► error
      └──recover / release (lease ran out, shutdown)

* **Leases** (:mod:`monitor.store.leases`, re-exported here): atomic (two
  workers, threads or processes never get the same job; ``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL) and fenced by the ``lease_until`` a worker received.
* **Idempotent enqueue**: by ``idempotency_key`` (unique column; a client's
  ``Idempotency-Key`` header, or ``sha256:<hex>`` for uploads without one), by
  content sha256 for uploads, and for source jobs by (source, location) among
  jobs not yet finished. A duplicate returns the existing job.

Times are timezone-aware UTC; durations are seconds.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from queue import Empty, SimpleQueue
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from monitor.errors import QueueFull
from monitor.store.leases import (
    BACKOFF,
    BACKOFF_MAX,
    MAX_ATTEMPTS,
    complete,
    fail,
    lease,
    lease_statement,
    recover,
    release,
    retry_delay,
)
from monitor.store.models import Job, utcnow

__all__ = ["ACTIVE", "BACKOFF", "BACKOFF_MAX", "MAX_ATTEMPTS", "Batcher", "Enqueued",
           "complete", "counts", "depth", "enqueue", "enqueue_many", "fail", "find_existing",
           "get", "lease", "lease_statement", "new_id", "next_due", "recover", "release",
           "retry_delay"]

ACTIVE = ("queued", "running")
"""Job states that still hold work."""

_enqueue_lock = threading.Lock()


@dataclass(frozen=True)
class Enqueued:
    """Result of :func:`enqueue`: the job, and whether this call created it."""

    job: Job
    created: bool


def _session(db: Engine) -> Session:
    return Session(db, expire_on_commit=False)


def new_id() -> str:
    """A fresh, unguessable job id (32 hex digits)."""
    return uuid.uuid4().hex


def find_existing(db: Engine, *, idempotency_key: str | None = None, sha256: str | None = None,
                  kind: str = "submission", source: str | None = None,
                  location: str | None = None) -> Job | None:
    """The job an enqueue with these keys would return instead of creating one.

    Looked up in order: ``idempotency_key``; ``sha256`` (same kind, any state);
    ``(source, location)`` among active jobs.
    """
    with _session(db) as s:
        return _find(s, idempotency_key, sha256, kind, source or "", location)


def enqueue(db: Engine, kind: str, *, source: str = "api", url: str | None = None,
            page_url: str | None = None, path: str | None = None,
            metadata: dict[str, Any] | None = None, sha256: str | None = None,
            idempotency_key: str | None = None, scan_id: int | None = None,
            dedupe_location: bool = False, max_depth: int | None = None) -> Enqueued:
    """Add a job unless an equivalent one exists; return it either way.

    Args:
        kind: ``submission``, ``crawl`` or ``file``.
        url, page_url: where the image is (fetched by the worker) and the page it is on.
        path: bytes already stored (an upload), relative to the data folder or absolute.
        sha256: content hash of ``path``'s bytes; same-content uploads return the first job.
        idempotency_key: client key; when absent for an upload, ``sha256:<hex>`` is used.
        dedupe_location: return an active job of the same ``source`` and location
            (``url`` or ``path``) instead of queueing the same thing twice.
        max_depth: raise :class:`QueueFull` instead of creating a job when
            :func:`depth` is already at least this (duplicates are still returned).

    Raises:
        QueueFull: see ``max_depth``.
    """
    result = enqueue_many(db, [dict(
        kind=kind, source=source, url=url, page_url=page_url, path=path, metadata=metadata,
        sha256=sha256, idempotency_key=idempotency_key, scan_id=scan_id,
        dedupe_location=dedupe_location, max_depth=max_depth)])[0]
    if isinstance(result, QueueFull):
        raise result
    return result


def _find(s: Session, key: str | None, sha256: str | None, kind: str, source: str,
          location: str | None) -> Job | None:
    if key:
        row = s.execute(select(Job).where(Job.idempotency_key == key)).first()
        if row is not None:
            return row[0]
    if sha256:
        q = select(Job).where(Job.sha256 == sha256, Job.kind == kind)
        row = s.execute(q.order_by(Job.created_at).limit(1)).first()
        if row is not None:
            return row[0]
    if location and source:
        q = select(Job).where(Job.source == source, Job.status.in_(ACTIVE),
                              or_(Job.url == location, Job.path == location))
        row = s.execute(q.limit(1)).first()
        if row is not None:
            return row[0]
    return None


def enqueue_many(db: Engine, requests: list[dict[str, Any]]) -> list[Enqueued | QueueFull]:
    """Enqueue several jobs in ONE transaction (group commit); one answer per request.

    Each request holds the keyword arguments of :func:`enqueue`. Duplicates
    inside the batch resolve to the first. A request refused for depth gets a
    :class:`QueueFull` instance in its place (not raised). One commit (one
    fsync) serves the whole batch, which is what makes the accept path fast
    under concurrency.
    """
    try:
        return _enqueue_batch(db, requests)
    except IntegrityError:  # another process inserted one of the keys: go one by one
        if len(requests) == 1:
            with _session(db) as s:
                r = requests[0]
                found = _find(s, _key(r), r.get("sha256"), r["kind"], r.get("source", "api"),
                              None)
            if found is None:
                raise
            return [Enqueued(found, False)]
        return [enqueue_many(db, [r])[0] for r in requests]


def _key(r: dict[str, Any]) -> str | None:
    sha = r.get("sha256")
    return r.get("idempotency_key") or (
        f"sha256:{sha}" if sha and r["kind"] == "submission" else None)


def _enqueue_batch(db: Engine, requests: list[dict[str, Any]]) -> list[Enqueued | QueueFull]:
    out: list[Enqueued | QueueFull] = []
    with _enqueue_lock, _session(db) as s:
        current: int | None = None
        for r in requests:
            kind, source = r["kind"], r.get("source", "api")
            location = (r.get("url") or r.get("path")) if r.get("dedupe_location") else None
            key = _key(r)
            found = _find(s, key, r.get("sha256"), kind, source, location)
            if found is not None:
                out.append(Enqueued(found, False))
                continue
            if r.get("max_depth") is not None:
                if current is None:
                    current = depth(db, s)
                if current >= r["max_depth"]:
                    out.append(QueueFull(f"queue holds {r['max_depth']} or more jobs"))
                    continue
            now = utcnow()
            job = Job(id=new_id(), kind=kind, source=source, url=r.get("url"),
                      page_url=r.get("page_url"), path=r.get("path"),
                      metadata_json=json.dumps(r.get("metadata") or {}),
                      sha256=r.get("sha256"), idempotency_key=key, scan_id=r.get("scan_id"),
                      created_at=now, updated_at=now)
            s.add(job)
            s.flush()
            if current is not None:
                current += 1
            out.append(Enqueued(job, True))
        s.commit()
    return out


class Batcher:
    """Group commit for concurrent enqueues: one writer thread, one transaction per batch.

    :meth:`submit` returns a :class:`concurrent.futures.Future` resolving to an
    :class:`Enqueued` or raising :class:`QueueFull`. Requests that arrive while
    a batch commits form the next batch (at most ``max_batch``).
    """

    def __init__(self, db: Engine, max_batch: int = 256) -> None:
        self.db, self.max_batch = db, max_batch
        self._q: SimpleQueue = SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="enqueue", daemon=True)
        self._thread.start()

    def submit(self, **request: Any) -> Future:
        """Queue one :func:`enqueue` request; returns its future."""
        fut: Future = Future()
        self._q.put((request, fut))
        return fut

    def close(self) -> None:
        """Finish pending requests and stop the writer thread."""
        self._q.put(None)
        self._thread.join(30)

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            try:
                results = enqueue_many(self.db, [r for r, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            for (_, fut), res in zip(batch, results, strict=True):
                if isinstance(res, QueueFull):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)


def depth(db: Engine, session: Session | None = None) -> int:
    """Jobs waiting or in progress (``queued`` + ``running``)."""
    q = select(func.count()).select_from(Job).where(Job.status.in_(ACTIVE))
    if session is not None:
        return session.execute(q).scalar_one()
    with _session(db) as s:
        return s.execute(q).scalar_one()


def counts(db: Engine) -> dict[str, int]:
    """Number of jobs in each state."""
    with _session(db) as s:
        rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {status: n for status, n in rows}


def get(db: Engine, job_id: str) -> Job | None:
    """The job with this id."""
    with _session(db) as s:
        return s.get(Job, job_id)


def next_due(db: Engine) -> datetime | None:
    """When the earliest delayed queued job becomes due (None: none delayed)."""
    with _session(db) as s:
        return s.execute(select(func.min(Job.not_before)).where(
            Job.status == "queued", Job.not_before.is_not(None))).scalar()
