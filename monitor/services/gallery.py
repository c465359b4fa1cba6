"""Protected gallery: add (idempotent by sha256), list and remove, keeping indices in step."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlmodel import select

from monitor.errors import MonitorError, NotFound
from monitor.imaging.decode import DecodedImage, decode_bytes
from monitor.intake.inputs import expand, read_file
from monitor.matching.engine import GalleryEntry
from monitor.matching.index.base import atomic_write
from monitor.matching.stages.hash import MIN_CODE_BITS, HashStage, set_bits
from monitor.services.workspace import Workspace
from monitor.store.models import Collection, MatchRow, ProtectedImage, Violation

BATCH = 32


@dataclass(frozen=True)
class AddResult:
    """Outcome of adding one file: ``status`` is ``added``, ``exists`` or ``error``;
    ``warning`` says what an added image will not be matched by (:func:`hash_warning`)."""

    path: str
    status: str
    gallery_id: int | None = None
    sha256: str | None = None
    error: str | None = None
    warning: str | None = None


def hash_warning(phash: np.ndarray) -> str | None:
    """Why the hash stage cannot match this gallery image alone, or None.

    ``phash`` is the ``(K, 8) uint8`` gallery codes (:meth:`HashStage.compute_gallery`).
    When its identity code has fewer than :data:`~monitor.matching.stages.hash.MIN_CODE_BITS`
    bits set (a flat or striped picture: blank, a gradient, a flag of plain bands), its
    hash hits count only when the local stage's dense check confirms them, and never
    where the local stage is off.
    """
    bits = int(set_bits(phash[:1])[0])
    if bits >= MIN_CODE_BITS:
        return None
    return (f"flat or striped picture (pHash sets {bits} of 64 bits): the hash stage "
            "alone cannot match it; copies are found through the local stage")


def stored_name(sha256: str, fmt: str) -> str:
    """Content-addressed relative path of a stored copy, e.g. ``gallery/ab/abcd….jpeg``."""
    return f"gallery/{sha256[:2]}/{sha256}.{fmt.lower()}"


def add_paths(ws: Workspace, paths: Iterable[str], collection: str,
              meta: dict[str, str] | None = None,
              progress: Callable[[AddResult], None] | None = None) -> list[AddResult]:
    """Register every image file under ``paths`` (recursive) in ``collection``.

    Already-registered content (same sha256 in the collection) is reported as
    ``exists``; files that are not images, or too large, as ``error`` with the
    reason. Indices are updated and saved once at the end.
    """
    engine = ws.engine()
    results: list[AddResult] = []
    batch: list[tuple[str, DecodedImage]] = []
    for item in expand(list(paths)):
        result, decoded = _prepare(ws, item.location, collection)
        if decoded is None:
            results.append(result)
            if progress:
                progress(result)
            continue
        batch.append((item.location, decoded))
        if len(batch) == BATCH:
            results += _commit(ws, batch, collection, meta or {}, progress)
            batch = []
    results += _commit(ws, batch, collection, meta or {}, progress)
    engine.save(ws.index_dir)
    ws.gallery_changed()
    return results


def _prepare(ws: Workspace, path: str, collection: str) -> tuple[AddResult, DecodedImage | None]:
    try:
        data = read_file(path, ws.limits.max_bytes)
        decoded = decode_bytes(data, ws.limits)
    except MonitorError as exc:
        return AddResult(path, "error", error=str(exc)), None
    with ws.session() as s:
        coll = ws.collection(s, collection)
        if coll is not None:
            row = s.exec(select(ProtectedImage).where(
                ProtectedImage.collection_id == coll.id,
                ProtectedImage.sha256 == decoded.sha256)).first()
            if row is not None:
                return AddResult(path, "exists", row.id, row.sha256), None
    rel = stored_name(decoded.sha256, decoded.format)
    if not (ws.data_dir / rel).exists():
        atomic_write(ws.data_dir / rel, data)
    return AddResult(path, "pending", sha256=decoded.sha256), decoded


def _commit(ws: Workspace, batch: list[tuple[str, DecodedImage]], collection: str,
            meta: dict[str, str], progress: Callable[[AddResult], None] | None
            ) -> list[AddResult]:
    if not batch:
        return []
    engine = ws.engine()
    hasher = engine.hash or HashStage()
    vectors = engine.embed([d for _, d in batch])
    model = engine.clip.fingerprint if vectors is not None else None
    out = []
    with ws.session() as s:
        coll = ws.collection(s, collection, create=True)
        for i, (path, d) in enumerate(batch):
            phash = hasher.compute_gallery(d)
            row = ProtectedImage(
                collection_id=coll.id, path=str(Path(path).resolve()),
                stored_path=stored_name(d.sha256, d.format), sha256=d.sha256,
                size_bytes=d.size_bytes, width=d.width, height=d.height, format=d.format,
                meta_json=json.dumps(meta), phash=phash.tobytes().hex(),
                clip_vector=None if vectors is None else vectors[i].tobytes(), clip_model=model)
            s.add(row)
            s.flush()
            engine.add(GalleryEntry(row.id, phash, None if vectors is None else vectors[i],
                                    lambda d=d: d), d)
            out.append(AddResult(path, "added", row.id, d.sha256,
                                 warning=hash_warning(phash)))
        s.commit()
    for r in out:
        if progress:
            progress(r)
    return out


def list_gallery(ws: Workspace, collection: str | None = None) -> list[tuple[ProtectedImage, str]]:
    """``(row, collection name)`` for every protected image, optionally of one collection."""
    with ws.session() as s:
        q = select(ProtectedImage, Collection).join(Collection).order_by(ProtectedImage.id)
        if collection:
            q = q.where(Collection.name == collection)
        return [(p, c.name) for p, c in s.exec(q).all()]


def remove(ws: Workspace, refs: list[str]) -> list[int]:
    """Remove protected images by id or sha256 (prefix of at least 8 hex digits).

    Their matches and violations are deleted with them and the images leave
    every index. Raises :class:`NotFound` for an unknown reference.
    """
    with ws.session() as s:
        ids = []
        for ref in refs:
            q = select(ProtectedImage)
            q = (q.where(ProtectedImage.id == int(ref)) if ref.isdigit()
                 else q.where(ProtectedImage.sha256.startswith(ref.lower())))
            rows = s.exec(q).all() if ref.isdigit() or len(ref) >= 8 else []
            if not rows:
                raise NotFound(f"no protected image with id or sha256 {ref!r}")
            ids += [r.id for r in rows]
        for model in (Violation, MatchRow):
            for r in s.exec(select(model).where(model.protected_id.in_(ids))).all():
                s.delete(r)
        for r in s.exec(select(ProtectedImage).where(ProtectedImage.id.in_(ids))).all():
            s.delete(r)
        s.commit()
    engine = ws.engine()
    engine.remove(ids)
    engine.save(ws.index_dir)
    ws.gallery_changed()
    return ids
