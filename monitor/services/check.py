"""Check candidates: read → record as pending → decode → stages → rules → store.

Every candidate row is committed as ``pending`` before decoding starts, so a
crash loses nothing; re-checking the same bytes from the same place updates
``last_seen`` and the existing matches instead of duplicating them. Decoding
and matching run on a small thread pool (Pillow, OpenCV and FAISS release the
GIL); CLIP runs batched on the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlmodel import select

from monitor.errors import DecodeError, MonitorError, NotFound
from monitor.imaging.decode import DecodedImage, decode_bytes
from monitor.intake.inputs import expand, is_url, read_file
from monitor.services.recorder import finish, record_pending
from monitor.services.workspace import Workspace
from monitor.store.models import ProtectedImage
from monitor.types import CheckResult

CHUNK = 32


@dataclass
class CandidateInput:
    """One candidate to check, with what is known of where it came from.

    Give ``data`` (bytes already fetched or uploaded) or leave it None to have
    ``location`` read (a file path) or fetched (an http(s) URL). ``error`` set
    means the bytes could not be had; it is recorded as the candidate's state.
    """

    location: str
    data: bytes | None = None
    error: MonitorError | None = None
    page_url: str | None = None
    http_status: int | None = None
    headers: dict[str, str] | None = None
    source_name: str | None = None
    decoded: DecodedImage | None = field(default=None, repr=False)
    candidate_id: int | None = None


def check(ws: Workspace, inputs: list[str], collection: str | None = None,
          scan_id: int | None = None, workers: int = 2,
          progress: Callable[[CheckResult], None] | None = None) -> Iterator[CheckResult]:
    """Check every input (files, folders, URLs) and yield one result per candidate.

    Raises:
        StageUnavailable: CLIP cannot load and ``clip.required`` is true.
        NotFound: ``collection`` does not exist.
    """
    items = (CandidateInput(i.location) for i in expand(inputs))
    return check_items(ws, items, collection, scan_id, workers, progress)


def check_items(ws: Workspace, items: Iterable[CandidateInput], collection: str | None = None,
                scan_id: int | None = None, workers: int = 2,
                progress: Callable[[CheckResult], None] | None = None
                ) -> Iterator[CheckResult]:
    """Check prepared :class:`CandidateInput` items, in chunks, yielding results in order."""
    engine = ws.engine()
    allowed = _collection_ids(ws, collection)
    info = ws.gallery_info()
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            list(pool.map(lambda it: _read(ws, it), chunk))
            record_pending(ws, chunk, scan_id)
            list(pool.map(lambda it: _decode(ws, it), chunk))
            good = [it for it in chunk if it.decoded is not None]
            vectors = engine.embed([it.decoded for it in good])
            vec = {id(it): (None if vectors is None else vectors[k]) for k, it in enumerate(good)}
            matches = list(pool.map(
                lambda it, vec=vec: engine.match(it.decoded, vec[id(it)], allowed)
                if it.decoded else [], chunk))
            for it, found in zip(chunk, matches, strict=True):
                result = finish(ws, it, found, info)
                it.decoded = None  # free pixels early
                if progress:
                    progress(result)
                yield result


def check_one(ws: Workspace, item: CandidateInput, collection: str | None = None,
              scan_id: int | None = None) -> CheckResult:
    """Check a single candidate on the calling thread (queue workers, HTTP search)."""
    return next(iter(check_items(ws, [item], collection, scan_id, workers=1)))


def _collection_ids(ws: Workspace, collection: str | None) -> set[int] | None:
    if not collection:
        return None
    with ws.session() as s:
        coll = ws.collection(s, collection)
        if coll is None:
            raise NotFound(f"no collection named {collection!r}")
        q = select(ProtectedImage.id).where(ProtectedImage.collection_id == coll.id)
        return set(s.exec(q).all())


def _read(ws: Workspace, item: CandidateInput) -> None:
    if item.data is not None or item.error is not None:
        return
    try:
        if is_url(item.location):
            res = ws.fetcher.fetch(item.location)
            item.data, item.http_status, item.headers = res.body, res.status, res.headers
        else:
            item.data = read_file(item.location, ws.limits.max_bytes)
    except MonitorError as exc:
        item.error = exc


def _decode(ws: Workspace, item: CandidateInput) -> None:
    if item.data is None or item.error is not None:
        return
    try:
        item.decoded = decode_bytes(item.data, ws.limits)
    except DecodeError as exc:
        item.error = exc
