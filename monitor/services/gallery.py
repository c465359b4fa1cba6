"""Protected gallery: add (idempotent by sha256), list, remove and purge, keeping indices
in step.

Evidence outlives the gallery: removing an image that has violations archives it (it
leaves matching and listings; its violations, audit trail and evidence files stay, and
the row says who removed it and when); :func:`purge` deletes archived images with all
of that. Adding an archived image's content to its collection again restores it.

The SQL lives in :mod:`monitor.store.gallery`; this module decodes, hashes, embeds,
stores the content-addressed copies (in the workspace's blob store, ``ws.blobs``) and
keeps the workspace's engine and cached gallery facts in step with the table.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from monitor.errors import Conflict, MonitorError
from monitor.imaging.budget import estimate
from monitor.imaging.decode import DecodedImage, decode_bytes
from monitor.intake.inputs import expand, read_file
from monitor.matching.engine import GalleryEntry
from monitor.matching.persist import Rebuilt, rebuild
from monitor.matching.stages.hash import MIN_CODE_BITS, HashStage, set_bits
from monitor.services.workspace import Workspace
from monitor.store import gallery as repo
from monitor.store.models import ProtectedImage

BATCH = 32
"""Decoded images hashed, embedded and inserted per transaction by :func:`add_paths`."""
MAX_NAME = 255
"""Characters of an uploaded file's name kept in its recorded path (:func:`upload_label`)."""


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
    reason. ``meta`` is stored as the images' metadata; ``progress`` is called with
    each result. Indices are updated and saved once at the end.

    Raises:
        StageUnavailable: CLIP cannot load and ``clip.required`` is true.
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
        data = read_file(path, ws.gallery_limits.max_bytes)
        with ws.decode_budget.claim(estimate(data, ws.gallery_limits)):
            decoded = decode_bytes(data, ws.gallery_limits)
    except MonitorError as exc:
        return AddResult(path, "error", error=str(exc)), None
    with ws.session() as s:
        row = repo.find_image(s, collection, decoded.sha256)
    if row is not None and row.archived_at is not None:
        return _restore(ws, path, row, decoded), None
    if row is not None:
        return AddResult(path, "exists", row.id, row.sha256), None
    rel = stored_name(decoded.sha256, decoded.format)
    if not ws.blobs.exists(rel):
        ws.blobs.put(rel, data)
    return AddResult(path, "pending", sha256=decoded.sha256), decoded


def _restore(ws: Workspace, path: str, row: ProtectedImage, decoded: DecodedImage) -> AddResult:
    """Bring archived ``row`` back into the gallery and the engine (already loaded)."""
    with ws.session() as s:
        repo.restore_image(s, row.id)
        s.commit()
    ws.engine().add(ws.gallery_entry(row), decoded)
    note = (f"restored from the archive (removed by {row.archived_by or 'unknown'} on "
            f"{row.archived_at:%Y-%m-%d})")
    return AddResult(path, "added", row.id, row.sha256, warning=note)


def _commit(ws: Workspace, batch: list[tuple[str, DecodedImage]], collection: str,
            meta: dict[str, str], progress: Callable[[AddResult], None] | None
            ) -> list[AddResult]:
    if not batch:
        return []
    engine = ws.engine()
    hasher = engine.hash or HashStage()
    vectors = engine.embed([d for _, d in batch])
    model = engine.clip.fingerprint if vectors is not None else None
    described = engine.describe([d for _, d in batch])
    sscd = engine.descriptor.fingerprint if described is not None else None
    out = []
    with ws.session() as s:
        coll = repo.find_collection(s, collection, create=True)
        for i, (path, d) in enumerate(batch):
            phash = hasher.compute_gallery(d)
            row = ProtectedImage(
                collection_id=coll.id, path=str(Path(path).resolve()),
                stored_path=stored_name(d.sha256, d.format), sha256=d.sha256,
                size_bytes=d.size_bytes, width=d.width, height=d.height, format=d.format,
                meta_json=json.dumps(meta), phash=phash.tobytes().hex(),
                clip_vector=None if vectors is None else vectors[i].tobytes(), clip_model=model,
                descriptor_vector=None if described is None else described[i].tobytes(),
                descriptor_model=sscd)
            repo.add_image(s, row)
            engine.add(GalleryEntry(row.id, phash, None if vectors is None else vectors[i],
                                    lambda d=d: d,
                                    None if described is None else described[i]), d)
            out.append(AddResult(path, "added", row.id, d.sha256,
                                 warning=hash_warning(phash)))
        s.commit()
    for r in out:
        if progress:
            progress(r)
    return out


def upload_label(name: str | None) -> str:
    """What an uploaded file is recorded as: its name without folders or control
    characters, at most :data:`MAX_NAME` characters (``upload`` when nothing is left).
    The name is never used on disk."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c) != "Cc").strip()
    return base[:MAX_NAME] or "upload"


def add_files(ws: Workspace, files: list[tuple[str, bytes]], collection: str,
              meta: dict[str, str] | None = None) -> list[AddResult]:
    """Add uploaded files, ``(file name, bytes)`` each, to ``collection``: one
    :class:`AddResult` per file, in order (see :func:`add_paths`), whose ``path`` is
    ``upload:<name>`` (:func:`upload_label`).

    The bytes pass through a temporary folder under ``data/tmp`` under a name of our
    own (any client name, ``..`` or 300 characters included, is safe); an added
    image's recorded path is ``upload:<name>``. The caller holds the gallery write lock
    when checks may run concurrently.

    Raises:
        StageUnavailable: CLIP cannot load and ``clip.required`` is true.
    """
    tmp_root = ws.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    out = []
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        for i, (name, data) in enumerate(files):
            path = Path(tmp) / f"{i}.upload"
            path.write_bytes(data)
            label = f"upload:{upload_label(name)}"
            r = replace(add_paths(ws, [str(path)], collection, meta)[0], path=label)
            if r.status == "added":
                with ws.session() as s:
                    repo.set_path(s, r.gallery_id, label)
                    s.commit()
                ws.gallery_changed()
            out.append(r)
    return out


def list_gallery(ws: Workspace, collection: str | None = None, *,
                 archived: bool = False) -> list[tuple[ProtectedImage, str]]:
    """``(row, collection name)`` for every protected image by id, optionally of one
    collection (an unknown name gives an empty list); archived images (``archived_at``
    set) are left out unless ``archived`` is true."""
    with ws.session() as s:
        return repo.list_images(s, collection, archived=None if archived else False)


@dataclass(frozen=True)
class Removal:
    """Outcome of :func:`remove`: ``deleted`` ids are gone with their matches; ``archived``
    ids had violations and were archived instead (see the module doc)."""

    deleted: list[int]
    archived: list[int]

    @property
    def ids(self) -> list[int]:
        """Every id taken out of the gallery, sorted."""
        return sorted(self.deleted + self.archived)


def remove(ws: Workspace, refs: list[str], actor: str = "unknown") -> Removal:
    """Take protected images out of the gallery by id or sha256 (prefix of at least 8
    hex digits): images with violations are archived by ``actor`` (free text: an OS
    user, an API key's name), the others deleted with their matches. Either way they
    leave every index and listing.

    Raises:
        NotFound: a reference names no image still in the gallery (an archived image
            counts as removed already); nothing is removed then.
    """
    with ws.session() as s:
        ids = repo.resolve_refs(s, refs)
        deleted, archived = repo.remove_images(s, ids, actor.strip()[:200] or "unknown")
        s.commit()
    engine = ws.engine()
    engine.remove(deleted + archived)
    engine.save(ws.index_dir)
    ws.gallery_changed()
    return Removal(deleted, archived)


def purge(ws: Workspace, refs: list[str]) -> repo.Purged:
    """Delete archived images for good, by id or sha256 prefix, with their matches,
    violations, review events, alerts, the evidence files no other violation needs and
    the stored copies no other image needs. Irreversible: callers confirm first.

    Raises:
        NotFound: a reference names no image at all.
        Conflict: a reference names an image still in the gallery (remove it first);
            nothing is purged then.
        StoreError: the blob store cannot delete a file (the rows are gone by then; the
            files left behind are orphans; deleting them later is safe).
    """
    with ws.session() as s:
        ids = repo.resolve_refs(s, refs, archived=None)
        live = repo.live_ids(s, ids)
        if live:
            raise Conflict(f"image(s) {', '.join(map(str, sorted(live)))} are still in the "
                           "gallery: remove them first (only archived images are purged)")
        done = repo.purge_images(s, ids)
        s.commit()
    for rel in [*done.evidence, *done.stored]:
        with contextlib.suppress(ValueError):  # not a key monitor wrote: nothing to delete
            ws.blobs.delete(rel)
    ws.gallery_changed()
    return done


def reindex(ws: Workspace, progress: Callable[[int], None] | None = None) -> list[Rebuilt]:
    """Rebuild the retrieval indices from the stored signals, each trained for the
    gallery's present size (:func:`monitor.matching.persist.rebuild`), and save them.
    ``progress`` gets a count per image read."""
    engine = ws.engine()
    built = rebuild(engine, ws.live_ids(), lambda ids: ws.fetch_entries(engine, ids), progress)
    engine.save(ws.index_dir)
    return built
