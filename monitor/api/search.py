"""``POST /v1/search``: search the gallery by image, synchronously.

The answer has the ``check --format jsonl`` shape. A search is a *query*, like
a cloud image-search API: nothing is recorded (no candidate, match,
violation or alert rows), so searching for one's own photos never raises
alerts. Submit to ``/v1/submissions`` to have a sighting recorded.

Body: ``multipart/form-data`` with part ``file`` (and optional
``collection``), or the raw image as ``image/*``. Signed like submissions.
Query ``collection`` restricts matches to one collection. 413 over
``server.max_upload_bytes``, 415 when the bytes are not a decodable image.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from monitor.api.intake import check_signature, read_body, sniff_image, state_of
from monitor.daemon.state import AppState
from monitor.errors import DecodeError, NotFound
from monitor.imaging.decode import decode_bytes
from monitor.matching.rules import overall
from monitor.outcome.jsonl import result_json
from monitor.store.models import ProtectedImage
from monitor.types import CheckResult

router = APIRouter(prefix="/v1", tags=["search"])

_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}, "collection": {"type": "string"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/search", openapi_extra=_BODY_DOC, responses={401: {}, 413: {}, 415: {}})
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
            raise HTTPException(422, "multipart search needs a 'file' part")
        data = await upload.read()
        name = upload.filename or name
        field = form.get("collection")
        collection = collection or (field if isinstance(field, str) and field else None)
    else:
        data = body
    return await run_in_threadpool(_search, st, data, name, collection)


def _allowed(st: AppState, collection: str | None) -> set[int] | None:
    if not collection:
        return None
    with st.ws.session() as s:
        coll = st.ws.collection(s, collection)
        if coll is None:
            raise NotFound(collection)
        q = select(ProtectedImage.id).where(ProtectedImage.collection_id == coll.id)
        return set(s.execute(q).scalars().all())


def _search(st: AppState, data: bytes, name: str, collection: str | None) -> dict[str, Any]:
    sniff_image(data)
    ws = st.ws
    try:
        decoded = decode_bytes(data, ws.limits)
    except DecodeError as exc:
        raise HTTPException(415, f"{exc.code}: {exc}") from None
    try:
        allowed = _allowed(st, collection)
    except NotFound:
        raise HTTPException(404, f"no collection named {collection!r}") from None
    engine = ws.engine()
    with st.gallery_lock.read():
        vectors = engine.embed([decoded])
        found = engine.match(decoded, None if vectors is None else vectors[0], allowed)
        info = ws.gallery_info()
    outcomes = [o for m in found if m.gallery_id in info
                and (o := ws.rules.judge(m, info[m.gallery_id][1], name))]
    result = CheckResult(name, decoded.sha256, overall(outcomes), outcomes)
    return result_json(result, info)

