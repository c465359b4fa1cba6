"""Submissions into the durable queue: what the HTTP accept path decides before enqueueing.

An upload is sniffed (:mod:`monitor.imaging.sniff`, one table) and hashed once here; its
sha256 travels with the job, so the worker's pipeline does not hash it again, and its
bytes are written once, content-addressed under ``uploads/`` in the blob store
(``ws.blobs``, which every api and worker process shares). Duplicates (the same
``Idempotency-Key``, or the same bytes) return the existing job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from monitor.errors import Conflict, InvalidRequest, NotFound, QueueFull
from monitor.services.workspace import Workspace
from monitor.store import queue
from monitor.store.models import Job

UPLOADS = "uploads"
"""Key prefix in the blob store (a folder under the data folder by default) of uploaded
bytes until they are checked."""


MAX_URL = 2048
"""Longest ``url`` or ``page_url`` accepted (characters): the sitemaps.org protocol's
limit for a URL, and what browsers and CDNs reliably carry. Also keeps every indexed
URL column under PostgreSQL's btree entry limit (~2,700 bytes)."""

MAX_KEY = 255
"""Longest ``Idempotency-Key`` accepted (characters)."""


def check_lengths(url: str | None, page_url: str | None, key: str | None) -> None:
    """Refuse over-long fields before anything is stored.

    Raises:
        InvalidRequest: ``url`` or ``page_url`` is longer than :data:`MAX_URL`, or ``key``
            longer than :data:`MAX_KEY` characters (422).
    """
    for name, value, limit in (("url", url, MAX_URL), ("page_url", page_url, MAX_URL),
                               ("Idempotency-Key", key, MAX_KEY)):
        if value is not None and len(value) > limit:
            raise InvalidRequest(f"{name} is {len(value)} characters long; at most {limit}")


@dataclass(frozen=True)
class Existing:
    """A submission that already exists for this key or these bytes."""

    id: str
    status: str


def prepare_upload(ws: Workspace, data: bytes, fmt: str, page_url: str | None,
                   meta: dict[str, Any], key: str | None, depth: int,
                   sha256: str | None = None) -> Existing | dict[str, Any]:
    """Hash and store an upload already sniffed as ``fmt``; the existing job, or the
    keyword arguments of the :func:`monitor.store.queue.enqueue` call to make.

    Args:
        depth: the queue depth as the caller last read it (a cheap pre-check; the
            enqueue itself decides).
        sha256: hex SHA-256 of ``data`` when the caller has it (the signature check
            hashed the request body, which is the upload for a raw ``image/*`` body).

    Raises:
        Conflict: ``key`` was used before for different bytes (409).
        QueueFull: the queue holds ``server.queue_max`` jobs (429).
        StoreError: the blob store cannot be written (503).
        InvalidRequest: ``page_url`` or ``key`` too long (:func:`check_lengths`, 422).
    """
    check_lengths(None, page_url, key)
    sha = sha256 or hashlib.sha256(data).hexdigest()
    existing = queue.find_existing(ws.db, idempotency_key=key or f"sha256:{sha}", sha256=sha)
    if existing is not None:
        if key and existing.idempotency_key == key and existing.sha256 != sha:
            raise Conflict("Idempotency-Key already used for a different body")
        return Existing(existing.id, existing.status)
    max_depth = ws.settings.server.queue_max
    if depth >= max_depth:
        raise QueueFull("queue is full; retry later")
    rel = f"{UPLOADS}/{sha[:2]}/{sha}"
    if not ws.blobs.exists(rel):
        ws.blobs.put(rel, data)
    return dict(kind="submission", page_url=page_url, path=rel, metadata=meta, sha256=sha,
                idempotency_key=key, max_depth=max_depth)


def prepare_url(ws: Workspace, url: str, page_url: str | None, meta: dict[str, Any],
                key: str | None) -> Existing | dict[str, Any]:
    """The existing job for ``key``, or the enqueue arguments of a URL submission (the
    worker fetches ``url`` through the SSRF guard).

    Raises:
        Conflict: ``key`` was used before for another URL (409).
        InvalidRequest: a field is too long (:func:`check_lengths`, 422).
    """
    check_lengths(url, page_url, key)
    if key:
        existing = queue.find_existing(ws.db, idempotency_key=key)
        if existing is not None:
            if existing.url != url:
                raise Conflict("Idempotency-Key already used for a different body")
            return Existing(existing.id, existing.status)
    return dict(kind="submission", url=url, page_url=page_url, metadata=meta,
                idempotency_key=key, dedupe_location=True,
                max_depth=ws.settings.server.queue_max)


def get_submission(ws: Workspace, job_id: str) -> Job:
    """The job of submission ``job_id``.

    Raises:
        NotFound: no such submission (404).
    """
    job = queue.get(ws.db, job_id)
    if job is None:
        raise NotFound(f"no submission {job_id}")
    return job
