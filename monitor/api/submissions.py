"""``/v1/submissions``: signed candidate intake into the durable queue.

Three body forms, all signed (see :mod:`monitor.outcome.signing`):

* ``multipart/form-data``: part ``file`` (the image), optional ``page_url`` and
  ``metadata`` (a JSON object as text);
* ``application/json``: ``{"url": "https://…", "page_url": "…", "metadata": {…}}``,
  the worker fetches ``url`` (SSRF guard, byte cap);
* ``image/*`` or ``application/octet-stream``: the raw image bytes.

Answers, in the order they are checked: 413 (``Content-Length`` or counted
body over ``server.max_upload_bytes``), 401 (missing, malformed, stale or
wrong signature), 415 (not an image by magic bytes and header parse), 409
(``Idempotency-Key`` reused with a different body), 202 for an existing job
(same ``Idempotency-Key``, or same content sha256 for uploads; ``duplicate``
is true), 429 with ``Retry-After`` (seconds) when the queue holds
``server.queue_max`` jobs, else 202 with the new job's ``id`` and ``status``
(and a ``Location`` header). Accepted uploads are committed in groups (one
transaction per batch of concurrent requests, :class:`monitor.store.queue.Batcher`)
before the 202 is sent, so an answered submission survives ``kill -9``.

``GET /v1/submissions/{id}`` (signed over ``GET /v1/submissions/{id}``, see
:mod:`monitor.outcome.signing`) gives the state and, once ``done``, ``result``
in the ``check --format jsonl`` shape. Uploads are checked as candidates named
``upload:<sha256>``; URL submissions under their URL.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field, HttpUrl, ValidationError
from starlette.concurrency import run_in_threadpool

from monitor.api.intake import (
    check_signature,
    read_body,
    signed,
    sniff_image,
    state_of,
    store_upload,
)
from monitor.daemon.state import AppState
from monitor.daemon.worker import load_result
from monitor.store import queue

RETRY_AFTER = 5
"""Seconds a client told 429 should wait before retrying."""

OUTCOMES = {401: "unauthorized", 409: "conflict", 413: "too_large", 415: "unsupported",
            429: "queue_full"}

router = APIRouter(prefix="/v1", tags=["submissions"])


class UrlSubmission(BaseModel):
    """JSON body: an image URL to fetch and check."""

    url: HttpUrl = Field(description="Image URL (http or https).")
    page_url: str | None = Field(None, description="Page the image was seen on.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Kept with the job.")


class Accepted(BaseModel):
    """Answer to a submission."""

    id: str = Field(description="Submission (job) id; poll GET /v1/submissions/{id}.")
    status: str = Field(description="queued, running, done or error.")
    duplicate: bool = Field(False, description="True when an existing submission was returned.")


class SubmissionStatus(BaseModel):
    """A submission's state and, once done, its result in the ``check --format jsonl`` shape."""

    id: str
    status: str
    kind: str
    source: str
    url: str | None
    page_url: str | None
    sha256: str | None
    metadata: dict[str, Any]
    attempts: int
    error: str | None
    candidate_id: int | None
    created_at: str
    updated_at: str
    result: dict[str, Any] | None = None


_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}, "page_url": {"type": "string"},
        "metadata": {"type": "string", "description": "JSON object"}}}},
    "application/json": {"schema": UrlSubmission.model_json_schema()},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/submissions", status_code=202, response_model=Accepted, openapi_extra=_BODY_DOC,
             responses={401: {}, 409: {}, 413: {}, 415: {}, 429: {}})
async def submit(request: Request, response: Response) -> Accepted:
    """Queue one candidate (signed upload or URL); 202 with its id."""
    st = state_of(request)
    try:
        body = await read_body(request, st.settings.server.max_upload_bytes)
        check_signature(request, body)
        key = request.headers.get("idempotency-key") or None
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            sub = _parse_json(body)
            out = await run_in_threadpool(_prepare_url, st, sub, key)
        else:
            data, page_url, meta = await _parse_upload(request, ctype, body)
            out = await run_in_threadpool(_prepare_upload, st, data, page_url, meta, key)
        if isinstance(out, dict):
            out = await _enqueue(st, out)
    except HTTPException as exc:
        st.metrics.submissions.labels(OUTCOMES.get(exc.status_code, "invalid")).inc()
        raise
    st.metrics.submissions.labels("duplicate" if out.duplicate else "accepted").inc()
    response.headers["Location"] = f"/v1/submissions/{out.id}"
    return out


def _parse_json(body: bytes) -> UrlSubmission:
    try:
        return UrlSubmission.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid JSON submission: {exc.errors()[0]['msg']}") from None


async def _parse_upload(request: Request, ctype: str, body: bytes
                        ) -> tuple[bytes, str | None, dict[str, Any]]:
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return body, None, {}
    if ctype != "multipart/form-data":
        raise HTTPException(415, f"unsupported Content-Type {ctype or '(none)'}: send "
                                 "multipart/form-data, application/json or image/*")
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "multipart submission needs a 'file' part")
    data = await upload.read()
    page_url = form.get("page_url")
    meta_text = form.get("metadata") or "{}"
    try:
        meta = json.loads(meta_text)
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except ValueError:
        raise HTTPException(422, "'metadata' must be a JSON object") from None
    if getattr(upload, "filename", None):
        meta.setdefault("filename", upload.filename)
    return data, page_url if isinstance(page_url, str) else None, meta


def _queue_full() -> HTTPException:
    return HTTPException(429, "queue is full; retry later",
                         headers={"Retry-After": str(RETRY_AFTER)})


def _prepare_upload(st: AppState, data: bytes, page_url: str | None, meta: dict[str, Any],
                    key: str | None) -> Accepted | dict[str, Any]:
    """Sniff, hash and store an upload; an existing job, or the enqueue request to make."""
    sniff_image(data)
    sha = hashlib.sha256(data).hexdigest()
    existing = queue.find_existing(st.ws.db, idempotency_key=key or f"sha256:{sha}",
                                   sha256=sha)
    if existing is not None:
        if key and existing.idempotency_key == key and existing.sha256 != sha:
            raise HTTPException(409, "Idempotency-Key already used for a different body")
        return Accepted(id=existing.id, status=existing.status, duplicate=True)
    if st.depth() >= st.settings.server.queue_max:  # cheap pre-check; enqueue decides
        raise _queue_full()
    rel = store_upload(st.ws.data_dir, sha, data)
    return dict(kind="submission", page_url=page_url, path=rel, metadata=meta, sha256=sha,
                idempotency_key=key, max_depth=st.settings.server.queue_max)


def _prepare_url(st: AppState, sub: UrlSubmission, key: str | None
                 ) -> Accepted | dict[str, Any]:
    url = str(sub.url)
    if key:
        existing = queue.find_existing(st.ws.db, idempotency_key=key)
        if existing is not None:
            if existing.url != url:
                raise HTTPException(409, "Idempotency-Key already used for a different body")
            return Accepted(id=existing.id, status=existing.status, duplicate=True)
    return dict(kind="submission", url=url, page_url=sub.page_url, metadata=sub.metadata,
                idempotency_key=key, dedupe_location=True,
                max_depth=st.settings.server.queue_max)


async def _enqueue(st: AppState, request: dict[str, Any]) -> Accepted:
    try:
        res = await st.enqueue(**request)
    except queue.QueueFull:
        raise _queue_full() from None
    if res.created:
        st.bump_depth()
        st.wake.set()
    return Accepted(id=res.job.id, status=res.job.status, duplicate=not res.created)


@router.get("/submissions/{job_id}", response_model=SubmissionStatus,
            dependencies=[Depends(signed)], responses={401: {}, 404: {}})
def submission_status(job_id: str, request: Request) -> SubmissionStatus:
    """A submission's state; ``result`` (``check --format jsonl`` shape) once it is done."""
    st = state_of(request)
    job = queue.get(st.ws.db, job_id)
    if job is None:
        raise HTTPException(404, f"no submission {job_id}")
    return SubmissionStatus(
        id=job.id, status=job.status, kind=job.kind, source=job.source, url=job.url,
        page_url=job.page_url, sha256=job.sha256, metadata=json.loads(job.metadata_json or "{}"),
        attempts=job.attempts, error=job.error, candidate_id=job.candidate_id,
        created_at=job.created_at.isoformat(), updated_at=job.updated_at.isoformat(),
        result=load_result(st.ws, job.id) if job.status == "done" else None)
