"""``/v1/gallery``: list, add and remove protected images.

``GET /v1/gallery?collection=&archived=&limit=&offset=`` lists (archived images only
with ``archived=true``); ``POST /v1/gallery`` (multipart: one or more ``file`` parts,
``collection`` (required) and ``metadata``, a JSON object of strings) adds,
idempotent by sha256 within the collection (a file's name is only recorded, as
``upload:<name>``, never used on disk); ``DELETE /v1/gallery/{id}`` removes an image:
deleted with its matches when it has no violations, else archived (out of matching and
listings, its violations and evidence kept; ``archived_by`` names the request's API key,
else ``api``), answering ``{"removed": [id]}`` plus ``"archived": [id]`` when archived.
All signed (see :mod:`monitor.outcome.signing`). Changes take the gallery write lock, so
queued checks never see a half-updated index. Ids beyond SQLite's range answer 422.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from monitor.api.intake import check_signature, read_body, signed, state_of
from monitor.api.violations import api_actor
from monitor.daemon.state import AppState
from monitor.errors import InvalidRequest, UnsupportedFormat
from monitor.services import gallery
from monitor.services.violations import MAX_ID

if TYPE_CHECKING:
    from monitor.store.models import ProtectedImage

router = APIRouter(prefix="/v1/gallery", tags=["gallery"])

_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file", "collection"],
                                       "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "collection": {"type": "string"},
        "metadata": {"type": "string", "description": "JSON object of strings"}}}}}}}


def _item(row: ProtectedImage, collection: str) -> dict[str, Any]:
    return {"id": row.id, "collection": collection, "path": row.path, "sha256": row.sha256,
            "width": row.width, "height": row.height, "format": row.format,
            "size_bytes": row.size_bytes, "metadata": json.loads(row.meta_json or "{}"),
            "added_at": row.added_at.isoformat(),
            "archived_at": row.archived_at.isoformat() if row.archived_at else None,
            "archived_by": row.archived_by}


@router.get("", dependencies=[Depends(signed)])
def list_images(request: Request, collection: str | None = None, archived: bool = False,
                limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_ID)
                ) -> dict[str, Any]:
    """Protected images, oldest first; archived ones too when ``archived`` is true."""
    rows = gallery.list_gallery(state_of(request).ws, collection, archived=archived)
    return {"total": len(rows), "items": [_item(r, c) for r, c in rows[offset:offset + limit]]}


MULTIPART_SLACK = 1 << 20
"""Bytes allowed beyond one gallery file for the multipart framing and form fields."""


def gallery_body_limit(st: AppState) -> int:
    """Largest ``POST /v1/gallery`` body (bytes): ``decode.gallery_max_bytes`` plus
    :data:`MULTIPART_SLACK` (send several large files in several requests)."""
    return st.settings.decode.gallery_max_bytes + MULTIPART_SLACK


@router.post("", status_code=201, openapi_extra=_BODY_DOC)
async def add_images(request: Request) -> dict[str, Any]:
    """Add uploaded images to a collection; per file: added, exists or error.

    The body may be as large as one gallery file (``decode.gallery_max_bytes``, 500 MB by
    default: protected images are trusted input, a 100-Mpx PNG weighs 150-300 MB) plus
    :data:`MULTIPART_SLACK`, not the candidates' ``server.max_upload_bytes``.

    Raises:
        UnsupportedFormat: the body is not multipart/form-data (415).
        InvalidRequest: no ``collection``, no ``file`` part, or ``metadata`` is not a
            JSON object (422).
        InputTooLarge: the body is larger than :func:`gallery_body_limit` (413).
    """
    st = state_of(request)
    body = await read_body(request, gallery_body_limit(st))
    check_signature(request, body)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedFormat("send multipart/form-data with 'file' and 'collection'")
    form = await request.form()
    collection = form.get("collection")
    if not isinstance(collection, str) or not collection:
        raise InvalidRequest("'collection' is required")
    try:
        meta = json.loads(form.get("metadata") or "{}")
        if not isinstance(meta, dict):
            raise ValueError
    except ValueError:
        raise InvalidRequest("'metadata' must be a JSON object") from None
    files = [(f.filename or "", await f.read())
             for f in form.getlist("file") if not isinstance(f, str)]
    if not files:
        raise InvalidRequest("at least one 'file' part is required")
    meta = {str(k): str(v) for k, v in meta.items()}
    results = await run_in_threadpool(_add, st, files, collection, meta)
    return {"collection": collection, "results": results}


def _add(st: AppState, files: list[tuple[str, bytes]], collection: str,
         meta: dict[str, str]) -> list[dict[str, Any]]:
    with st.gallery_lock.write():
        results = gallery.add_files(st.ws, files, collection, meta)
    return [{"file": gallery.upload_label(name), "status": r.status, "id": r.gallery_id,
             "sha256": r.sha256, "error": r.error, "warning": r.warning}
            for (name, _), r in zip(files, results, strict=True)]


@router.delete("/{image_id}", dependencies=[Depends(signed)])
def remove_image(image_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                 request: Request) -> dict[str, Any]:
    """Remove one protected image: deleted with its matches, or archived when it has
    violations (they, their audit trail and evidence stay).

    Raises:
        NotFound: no image in the gallery has this id (404, by the app's error handler).
    """
    st = state_of(request)
    with st.gallery_lock.write():
        done = gallery.remove(st.ws, [str(image_id)], api_actor(request))
    return {"removed": done.ids, **({"archived": done.archived} if done.archived else {})}
