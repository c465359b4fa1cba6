"""Check candidates: read → record as pending → decode → stages → rules → store.

Every candidate row is committed as ``pending`` before decoding starts, so a
crash loses nothing; re-checking the same bytes from the same place updates
``last_seen`` and the existing matches instead of duplicating them. Decoding
and matching run on a small thread pool (Pillow, OpenCV and FAISS release the
GIL); CLIP runs batched on the main thread.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlmodel import Session, select

from monitor.decode import DecodedImage, decode_bytes
from monitor.errors import DecodeError, MonitorError
from monitor.index.base import atomic_write
from monitor.inputs import Input, expand, fetch, read_file
from monitor.results import CheckResult, Match, RuleOutcome, Verdict
from monitor.rules import overall
from monitor.store.models import Candidate, MatchRow, ProtectedImage, Violation, utcnow
from monitor.workspace import Workspace

CHUNK = 32


@dataclass
class _Item:
    input: Input
    data: bytes | None = None
    error: MonitorError | None = None
    decoded: DecodedImage | None = None
    candidate_id: int | None = None


def check(ws: Workspace, inputs: list[str], collection: str | None = None,
          scan_id: int | None = None, workers: int = 2,
          progress: Callable[[CheckResult], None] | None = None) -> Iterator[CheckResult]:
    """Check every input (files, folders, URLs) and yield one result per candidate.

    Raises:
        StageUnavailable: CLIP cannot load and ``clip.required`` is true.
    """
    engine = ws.engine()
    allowed = _collection_ids(ws, collection)
    info = ws.gallery_info()
    items = [_Item(i) for i in expand(inputs)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            list(pool.map(lambda it: _read(ws, it), chunk))
            _record_pending(ws, chunk, scan_id)
            list(pool.map(lambda it: _decode(ws, it), chunk))
            good = [it for it in chunk if it.decoded is not None]
            vectors = engine.embed([it.decoded for it in good])
            vec = {id(it): (None if vectors is None else vectors[k]) for k, it in enumerate(good)}
            matches = list(pool.map(
                lambda it, vec=vec: engine.match(it.decoded, vec[id(it)], allowed)
                if it.decoded else [], chunk))
            for it, found in zip(chunk, matches, strict=True):
                result = _finish(ws, it, found, info)
                if progress:
                    progress(result)
                yield result


def _collection_ids(ws: Workspace, collection: str | None) -> set[int] | None:
    if not collection:
        return None
    with ws.session() as s:
        coll = ws.collection(s, collection)
        if coll is None:
            from monitor.errors import NotFound

            raise NotFound(f"no collection named {collection!r}")
        q = select(ProtectedImage.id).where(ProtectedImage.collection_id == coll.id)
        return set(s.exec(q).all())


def _read(ws: Workspace, item: _Item) -> None:
    try:
        if item.input.is_url:
            item.data, _, _ = fetch(item.input.location, ws.limits.max_bytes)
        else:
            item.data = read_file(item.input.location, ws.limits.max_bytes)
    except MonitorError as exc:
        item.error = exc


def _decode(ws: Workspace, item: _Item) -> None:
    if item.data is None or item.error is not None:
        return
    try:
        item.decoded = decode_bytes(item.data, ws.limits)
    except DecodeError as exc:
        item.error = exc


def _record_pending(ws: Workspace, chunk: list[_Item], scan_id: int | None) -> None:
    now = utcnow()
    with ws.session() as s:
        for it in chunk:
            sha = hashlib.sha256(it.data).hexdigest() if it.data is not None else None
            row = s.exec(select(Candidate).where(Candidate.source == it.input.location,
                                                 Candidate.sha256 == sha)).first()
            if row is None:
                row = Candidate(source=it.input.location, sha256=sha, first_seen=now)
            row.last_seen, row.status, row.scan_id = now, "pending", scan_id or row.scan_id
            row.size_bytes = len(it.data) if it.data is not None else None
            s.add(row)
            s.flush()
            it.candidate_id = row.id
        s.commit()


def _finish(ws: Workspace, it: _Item, found: list[Match],
            info: dict[int, tuple[str, str, dict]]) -> CheckResult:
    with ws.session() as s:
        row = s.get(Candidate, it.candidate_id)
        if it.error is not None:
            row.status, row.verdict = "error", Verdict.ERROR.value
            row.error_code, row.error = it.error.code, str(it.error)
            s.add(row)
            s.commit()
            return CheckResult(it.input.location, row.sha256, Verdict.ERROR, error=str(it.error),
                               error_code=it.error.code, candidate_id=row.id)
        outcomes = [o for m in found if m.gallery_id in info
                    and (o := ws.rules.judge(m, info[m.gallery_id][1], it.input.location))]
        verdict = overall(outcomes)
        d = it.decoded
        row.width, row.height, row.format = d.width, d.height, d.format
        row.status, row.verdict, row.checked_at = "checked", verdict.value, utcnow()
        row.error_code = row.error = None
        if verdict in (Verdict.VIOLATION, Verdict.REVIEW) and not row.evidence_path:
            rel = f"evidence/{d.sha256[:2]}/{d.sha256}.{d.format.lower()}"
            atomic_write(ws.data_dir / rel, it.data)
            row.evidence_path = rel
        s.add(row)
        for o in outcomes:
            _store_outcome(s, row.id, o)
        s.commit()
    return CheckResult(it.input.location, d.sha256, verdict, outcomes, candidate_id=row.id)


def _store_outcome(s: Session, candidate_id: int, o: RuleOutcome) -> None:
    m = o.match
    row = s.exec(select(MatchRow).where(MatchRow.candidate_id == candidate_id,
                                        MatchRow.protected_id == m.gallery_id)).first()
    row = row or MatchRow(candidate_id=candidate_id, protected_id=m.gallery_id, stage=m.stage,
                          score=m.score)
    row.stage, row.score = m.stage, m.score
    row.distance, row.cosine, row.inliers = m.distance, m.cosine, m.inliers
    row.region_json = json.dumps(m.region) if m.region else None
    row.quad_json = json.dumps(m.quad) if m.quad else None
    local = m.evidence("local")
    row.mirrored = bool(local and local.mirrored)
    s.add(row)
    s.flush()
    if o.verdict not in (Verdict.VIOLATION, Verdict.REVIEW):
        return
    v = s.exec(select(Violation).where(Violation.match_id == row.id)).first()
    if v is None:
        s.add(Violation(match_id=row.id, candidate_id=candidate_id, protected_id=m.gallery_id,
                        verdict=o.verdict.value, rule=o.rule, severity=o.severity))
    else:
        v.verdict, v.rule, v.severity, v.updated_at = o.verdict.value, o.rule, o.severity, utcnow()
        s.add(v)
