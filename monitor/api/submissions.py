"""``/v1/submissions``: signed candidate intake into the durable queue.

Three body forms, all signed (see :mod:`monitor.outcome.signing`):

* ``multipart/form-data``: part ``file`` (the image), optional ``page_url`` and
  ``metadata`` (a JSON object as text);
* ``application/json``: ``{"url": "https://…", "page_url": "…", "metadata": {…}}``,
  the worker fetches ``url`` (SSRF guard, byte cap);
* ``image/*`` or ``application/octet-stream``: the raw image bytes.

Answers, in the order they are checked: 401 (unsigned, unknown key, stale timestamp
or malformed signature headers: refused before a byte of the body is read), 403 (the
key lacks the ``submit`` scope), 413 (``Content-Length`` or counted body over
``server.max_upload_bytes``), 408 (body slower than ``server.body_timeout``), 401
(wrong MAC or a replayed nonce), 415 (not an image by magic bytes and header parse), 409
(``Idempotency-Key`` reused with a different body), 202 for an existing job
(same ``Idempotency-Key``, or same content sha256 for uploads; ``duplicate``
is true), 429 with ``Retry-After`` (seconds) when the queue holds
``server.queue_max`` jobs, else 202 with the new job's ``id`` and ``status``
(and a ``Location`` header). Accepted uploads are committed in groups (one
transaction per batch of concurrent requests, :class:`monitor.store.queue.Batcher`)
before the 202 is sent, so an answered submission survives ``kill -9``.

``GET /v1/submissions/{id}`` (signed, scope ``read``; see
:mod:`monitor.outcome.signing`) gives the state and, once ``done``, ``result``
in the ``check --format jsonl`` shape. Uploads are checked as candidates named
``upload:<sha256>``; URL submissions under their URL.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, HttpUrl, ValidationError
from starlette.concurrency import run_in_threadpool

from monitor.api.intake import check_signature, read_body, signed, sniff_image, state_of
from monitor.daemon.state import AppState
from monitor.daemon.worker import load_result
from monitor.errors import InvalidRequest, MonitorError, UnsupportedFormat
from monitor.services import submissions

OUTCOMES = {401: "unauthorized", 403: "forbidden", 408: "timeout", 409: "conflict",
            413: "too_large", 415: "unsupported", 429: "queue_full"}

router = APIRouter(prefix="/v1", tags=["submissions"])


class UrlSubmission(BaseModel):
    """JSON body: an image URL to fetch and check."""

    url: HttpUrl = Field(description="Image URL (http or https).")
    page_url: str | None = Field(None, description="Page the image was seen on.")
    metadata: dict[str, Any] = Field(default_factory=dict, description=(
        "Kept with the job. page_title, alt, image_title and caption (strings: how the "
        "image appears on page_url) are also kept with the sighting and shown in reports "
        "and takedown drafts."))


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
             responses={401: {}, 403: {}, 408: {}, 409: {}, 413: {}, 415: {}, 429: {}})
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
            digest = getattr(request.state, "body_sha256", None) if data is body else None
            out = await run_in_threadpool(_prepare_upload, st, data, page_url, meta, key,
                                          digest)
        if isinstance(out, dict):
            out = await _enqueue(st, out)
    except MonitorError as exc:
        st.metrics.submissions.labels(OUTCOMES.get(exc.http_status, "invalid")).inc()
        raise
    st.metrics.submissions.labels("duplicate" if out.duplicate else "accepted").inc()
    response.headers["Location"] = f"/v1/submissions/{out.id}"
    return out


def _parse_json(body: bytes) -> UrlSubmission:
    try:
        return UrlSubmission.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid JSON submission: {exc.errors()[0]['msg']}") from None


async def _parse_upload(request: Request, ctype: str, body: bytes
                        ) -> tuple[bytes, str | None, dict[str, Any]]:
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return body, None, {}
    if ctype != "multipart/form-data":
        raise UnsupportedFormat(f"unsupported Content-Type {ctype or '(none)'}: send "
                                "multipart/form-data, application/json or image/*")
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InvalidRequest("multipart submission needs a 'file' part")
    data = await upload.read()
    page_url = form.get("page_url")
    meta_text = form.get("metadata") or "{}"
    try:
        meta = json.loads(meta_text)
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except ValueError:
        raise InvalidRequest("'metadata' must be a JSON object") from None
    if getattr(upload, "filename", None):
        meta.setdefault("filename", upload.filename)
    return data, page_url if isinstance(page_url, str) else None, meta


def _prepare_upload(st: AppState, data: bytes, page_url: str | None, meta: dict[str, Any],
                    key: str | None, digest: str | None) -> Accepted | dict[str, Any]:
    fmt = sniff_image(data)
    out = submissions.prepare_upload(st.ws, data, fmt, page_url, meta, key, st.depth(),
                                     sha256=digest)
    return _accepted(out)


def _prepare_url(st: AppState, sub: UrlSubmission, key: str | None
                 ) -> Accepted | dict[str, Any]:
    out = submissions.prepare_url(st.ws, str(sub.url), sub.page_url, sub.metadata, key)
    return _accepted(out)


def _accepted(out: submissions.Existing | dict[str, Any]) -> Accepted | dict[str, Any]:
    if isinstance(out, submissions.Existing):
        return Accepted(id=out.id, status=out.status, duplicate=True)
    return out


async def _enqueue(st: AppState, request: dict[str, Any]) -> Accepted:
    res = await st.enqueue(**request)
    if res.created:
        st.bump_depth()
        st.announce(res.job.id)
    return Accepted(id=res.job.id, status=res.job.status, duplicate=not res.created)


@router.get("/submissions/{job_id}", response_model=SubmissionStatus,
            dependencies=[Depends(signed)], responses={401: {}, 404: {}})
def submission_status(job_id: str, request: Request) -> SubmissionStatus:
    """A submission's state; ``result`` (``check --format jsonl`` shape) once it is done."""
    st = state_of(request)
    job = submissions.get_submission(st.ws, job_id)
    return SubmissionStatus(
        id=job.id, status=job.status, kind=job.kind, source=job.source, url=job.url,
        page_url=job.page_url, sha256=job.sha256, metadata=json.loads(job.metadata_json or "{}"),
        attempts=job.attempts, error=job.error, candidate_id=job.candidate_id,
        created_at=job.created_at.isoformat(), updated_at=job.updated_at.isoformat(),
        result=load_result(st.ws, job.id) if job.status == "done" else None)
