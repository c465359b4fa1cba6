"""``POST /v1/search``: search the gallery by image, synchronously.

The answer has the ``check --format jsonl`` shape. A search is a *query*, like
a cloud image-search API: nothing is recorded (no candidate, match,
violation or alert rows), so searching for one's own photos never raises
alerts. Submit to ``/v1/submissions`` to have a sighting recorded.

Body: ``multipart/form-data`` with part ``file`` (and optional
``collection``), or the raw image as ``image/*``. Signed like submissions, with a key
holding the ``search`` scope (401/403 before the body is read, see
:mod:`monitor.api.intake`).
Query ``collection`` restricts matches to one collection. 413 over
``server.max_upload_bytes``, 415 when the bytes are not a decodable image.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from monitor.api.intake import check_signature, read_body, sniff_image, state_of
from monitor.daemon.state import AppState
from monitor.errors import InvalidRequest
from monitor.outcome.jsonl import result_json
from monitor.services.check import CandidateInput, check_one

router = APIRouter(prefix="/v1", tags=["search"])

_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}, "collection": {"type": "string"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/search", openapi_extra=_BODY_DOC,
             responses={401: {}, 403: {}, 408: {}, 413: {}, 415: {}})
async def search(request: Request, collection: str | None = None) -> dict[str, Any]:
    """Match one image against the gallery now; nothing is recorded."""
    st = state_of(request)
    body = await read_body(request, st.settings.server.max_upload_bytes)
    check_signature(request, body)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    name = "search"
    if ctype == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidRequest("multipart search needs a 'file' part")
        data = await upload.read()
        name = upload.filename or name
        field = form.get("collection")
        collection = collection or (field if isinstance(field, str) and field else None)
    else:
        data = body
    return await run_in_threadpool(_search, st, data, name, collection)


def _search(st: AppState, data: bytes, name: str, collection: str | None) -> dict[str, Any]:
    """The one check pipeline with recording off, under the gallery's read lock."""
    sniff_image(data)
    item = CandidateInput(name, data=data)
    with st.gallery_lock.read():
        result = check_one(st.ws, item, collection, record=False)
        info = st.ws.gallery_info()
    return result_json(result, info)
