"""Repository of the protected gallery: the SQL over ``ProtectedImage`` and ``Collection``.

An image that has violations is never deleted by a removal: it is *archived*
(``archived_at``, ``archived_by`` set), so the evidence of its violations outlives it;
archived images are left out of matching and listings unless asked for, and only
:func:`purge_images` deletes them with their violations.

Every function takes an open :class:`~sqlmodel.Session` (from
:meth:`monitor.store.Store.session`) and leaves committing to the caller, so the
services layer decides what one transaction holds; :func:`ping` takes the engine.
Every change of the live gallery bumps the ``gallery`` counter in the same transaction
(:mod:`monitor.store.coordination`), which is how other processes notice it.
Rows come back detached-safe (the store's sessions do not expire on commit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from string import hexdigits

from sqlalchemy import delete, func, update
from sqlmodel import Session, select

from monitor.errors import NotFound
from monitor.store import coordination
from monitor.store.models import (
    Alert,
    Candidate,
    Collection,
    MatchRow,
    ProtectedImage,
    Violation,
    ViolationEvent,
    utcnow,
)
from monitor.store.violations import MAX_ID

MIN_SHA_PREFIX = 8
"""Hex digits a sha256 prefix needs before :func:`resolve_refs` looks it up."""


def _live(q, archived: bool | None = False):
    """``q`` narrowed to live images (``archived`` False), archived ones (True) or any (None)."""
    if archived is None:
        return q
    return q.where(ProtectedImage.archived_at.is_not(None) if archived
                   else ProtectedImage.archived_at.is_(None))


def find_collection(session: Session, name: str, create: bool = False) -> Collection | None:
    """The collection called ``name``; created (and flushed, so it has an id) when
    ``create`` is true and none exists, else None."""
    row = session.exec(select(Collection).where(Collection.name == name)).first()
    if row is None and create:
        row = Collection(name=name)
        session.add(row)
        session.flush()
    return row


def collection_ids(session: Session, name: str) -> set[int]:
    """Ids of the live (not archived) protected images in the collection called ``name``.

    Raises:
        NotFound: no collection has this name.
    """
    coll = find_collection(session, name)
    if coll is None:
        raise NotFound(f"no collection named {name!r}")
    q = _live(select(ProtectedImage.id).where(ProtectedImage.collection_id == coll.id))
    return set(session.exec(q).all())


def find_image(session: Session, collection: str, sha256: str) -> ProtectedImage | None:
    """The image with content ``sha256`` (64 hex digits) in the collection called
    ``collection``, archived or not, or None (also when the collection does not exist)."""
    q = (select(ProtectedImage).join(Collection)
         .where(Collection.name == collection, ProtectedImage.sha256 == sha256))
    return session.exec(q).first()


def add_image(session: Session, row: ProtectedImage) -> ProtectedImage:
    """Insert ``row`` and flush so ``row.id`` is set; the caller commits.

    Raises:
        sqlalchemy.exc.IntegrityError: the same sha256 is already in that collection.
    """
    session.add(row)
    session.flush()
    coordination.bump(session, coordination.GALLERY)
    return row


def list_images(session: Session, collection: str | None = None, *,
                archived: bool | None = False) -> list[tuple[ProtectedImage, str]]:
    """``(row, collection name)`` of the protected images, by id: live ones (``archived``
    False, the default), archived ones (True) or both (None); only the collection called
    ``collection`` when given (an unknown name gives an empty list)."""
    q = _live(select(ProtectedImage, Collection.name).join(Collection)
              .order_by(ProtectedImage.id), archived)
    if collection:
        q = q.where(Collection.name == collection)
    return [(p, name) for p, name in session.exec(q).all()]


def all_live_ids(session: Session) -> list[int]:
    """Ids of every live (not archived) protected image, ascending: what the engine's
    indices are reconciled against (one narrow column, cheap at a million rows)."""
    q = _live(select(ProtectedImage.id).order_by(ProtectedImage.id))
    return list(session.exec(q).all())


def images_by_id(session: Session, ids: Iterable[int]) -> list[ProtectedImage]:
    """The protected image rows of ``ids`` (those that exist), by id."""
    q = select(ProtectedImage).where(ProtectedImage.id.in_(list(ids))).order_by(ProtectedImage.id)
    return list(session.exec(q).all())


def labels(session: Session) -> list[tuple[int, str, str, str]]:
    """``(id, path, collection name, meta_json)`` of every protected image, archived ones
    included (their old violations still name them): what results name a gallery match
    by, without the signal columns (pHash, CLIP vector)."""
    q = select(ProtectedImage.id, ProtectedImage.path, Collection.name,
               ProtectedImage.meta_json).join(Collection)
    return [tuple(r) for r in session.exec(q).all()]


def phashes(session: Session, collection: str | None) -> dict[int, str]:
    """``{id: phash hex}`` of the live images in the collection called ``collection``
    (every collection when it is None or empty), by id; empty when there is no such
    collection."""
    q = _live(select(ProtectedImage.id, ProtectedImage.phash).join(Collection)
              .order_by(ProtectedImage.id))
    if collection:
        q = q.where(Collection.name == collection)
    return {gid: ph for gid, ph in session.exec(q).all()}


def collection_sizes(session: Session) -> dict[str, int]:
    """``{collection name: live protected images}`` (archived ones not counted), by name in
    code-point order (sorted here: a server's collation would order names differently on
    PostgreSQL than on SQLite)."""
    q = (select(Collection.name, func.count(ProtectedImage.id))
         .join(ProtectedImage, ProtectedImage.collection_id == Collection.id)
         .where(ProtectedImage.archived_at.is_(None))
         .group_by(Collection.name))
    return {name: int(n) for name, n in sorted(session.exec(q).all())}


def set_clip_vectors(session: Session, vectors: Iterable[tuple[int, bytes]], model: str) -> None:
    """Store CLIP embeddings: ``(image id, float32 vector bytes)`` pairs, tagged ``model``
    (the CLIP fingerprint); one executemany UPDATE. The caller commits."""
    params = [{"id": gid, "clip_vector": vec, "clip_model": model} for gid, vec in vectors]
    if params:
        session.execute(update(ProtectedImage), params)


def set_descriptor_vectors(session: Session, vectors: Iterable[tuple[int, bytes]],
                           model: str) -> None:
    """Store SSCD embeddings: ``(image id, float32 vector bytes)`` pairs, tagged ``model``
    (the descriptor stage's fingerprint); one executemany UPDATE. The caller commits."""
    params = [{"id": gid, "descriptor_vector": vec, "descriptor_model": model}
              for gid, vec in vectors]
    if params:
        session.execute(update(ProtectedImage), params)


def set_path(session: Session, image_id: int, path: str) -> None:
    """Change the recorded original path of image ``image_id`` (e.g. ``upload:name``)."""
    session.execute(update(ProtectedImage).where(ProtectedImage.id == image_id)
                    .values(path=path))


def resolve_refs(session: Session, refs: Iterable[str], *,
                 archived: bool | None = False) -> list[int]:
    """Image ids named by ``refs``, in order: each ref is an id (ASCII decimal digits) or
    a sha256 prefix of at least :data:`MIN_SHA_PREFIX` hex digits (may match several
    images; ids repeat when refs overlap). Only live images are looked at (``archived``
    False), only archived ones (True) or both (None).

    Raises:
        NotFound: a ref names no such image (or is not an id nor a long enough hex prefix).
    """
    ids: list[int] = []
    for ref in refs:
        ref = ref.strip()
        q = _live(select(ProtectedImage.id).order_by(ProtectedImage.id), archived)
        found: list[int] = []
        if ref.isascii() and ref.isdigit():
            if 0 < int(ref) <= MAX_ID:
                found = list(session.exec(q.where(ProtectedImage.id == int(ref))).all())
        elif len(ref) >= MIN_SHA_PREFIX and all(c in hexdigits for c in ref):
            found = list(session.exec(q.where(ProtectedImage.sha256.startswith(ref.lower())))
                         .all())
        if not found:
            kind = {False: "protected", True: "archived", None: "protected or archived"}
            raise NotFound(f"no {kind[archived]} image with id or sha256 {ref!r}")
        ids += found
    return ids


def live_ids(session: Session, ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` are live (not archived) protected images."""
    q = _live(select(ProtectedImage.id).where(ProtectedImage.id.in_(list(ids))))
    return set(session.exec(q).all())


def remove_images(session: Session, ids: list[int], actor: str) -> tuple[list[int], list[int]]:
    """Take images ``ids`` out of the gallery; the caller commits.

    Images with violations are archived (``archived_at`` now in UTC, ``archived_by``
    ``actor``), keeping their matches, violations, audit trail and alerts; the others are
    deleted with their match rows. The archiving UPDATE comes first, so the transaction
    holds the write lock before it decides which images have violations.

    Returns:
        ``(deleted ids, archived ids)``, each sorted, duplicates dropped.
    """
    wanted = sorted(set(ids))
    with_violations = select(Violation.protected_id).where(Violation.protected_id.in_(wanted))
    session.execute(update(ProtectedImage)
                    .where(ProtectedImage.id.in_(wanted), ProtectedImage.id.in_(with_violations),
                           ProtectedImage.archived_at.is_(None))
                    .values(archived_at=utcnow(), archived_by=actor))
    kept = set(session.exec(with_violations).all())
    deleted = [i for i in wanted if i not in kept]
    session.execute(delete(MatchRow).where(MatchRow.protected_id.in_(deleted)))
    session.execute(delete(ProtectedImage).where(ProtectedImage.id.in_(deleted)))
    session.flush()
    coordination.bump(session, coordination.GALLERY)
    return deleted, sorted(kept)


def restore_image(session: Session, image_id: int) -> None:
    """Bring archived image ``image_id`` back into the gallery (clear ``archived_at`` and
    ``archived_by``); the caller commits."""
    session.execute(update(ProtectedImage).where(ProtectedImage.id == image_id)
                    .values(archived_at=None, archived_by=None))
    coordination.bump(session, coordination.GALLERY)


@dataclass(frozen=True)
class Purged:
    """What :func:`purge_images` deleted, and the files it left unreferenced.

    Attributes:
        images: ids of the deleted protected images.
        violations: how many violations went with them (their events and alerts too).
        evidence: evidence files (relative to the data folder) no remaining violation
            refers to; their candidates' ``evidence_path`` was cleared.
        stored: gallery copies (relative to the data folder) no remaining image refers to.
    """

    images: list[int]
    violations: int
    evidence: list[str]
    stored: list[str]


def purge_images(session: Session, ids: list[int]) -> Purged:
    """Delete images ``ids`` for good, with their matches, violations, review events and
    alerts; the caller commits, then deletes the files named in the result.

    Candidates stay (they record what was checked); those whose evidence file no
    remaining violation needs lose their ``evidence_path``.
    """
    ids = sorted(set(ids))
    vids = list(session.exec(select(Violation.id).where(Violation.protected_id.in_(ids))).all())
    cands = select(Violation.candidate_id).where(Violation.id.in_(vids))
    paths = set(session.exec(select(Candidate.evidence_path).where(
        Candidate.id.in_(cands), Candidate.evidence_path.is_not(None))).all())
    stored = set(session.exec(select(ProtectedImage.stored_path)
                              .where(ProtectedImage.id.in_(ids))).all())
    session.execute(delete(Alert).where(Alert.violation_id.in_(vids)))
    session.execute(delete(ViolationEvent).where(ViolationEvent.violation_id.in_(vids)))
    session.execute(delete(Violation).where(Violation.id.in_(vids)))
    session.execute(delete(MatchRow).where(MatchRow.protected_id.in_(ids)))
    session.execute(delete(ProtectedImage).where(ProtectedImage.id.in_(ids)))
    still = set(session.exec(select(Candidate.evidence_path).join(
        Violation, Violation.candidate_id == Candidate.id)
        .where(Candidate.evidence_path.in_(paths))).all())
    gone = sorted(paths - still)
    session.execute(update(Candidate).where(Candidate.evidence_path.in_(gone))
                    .values(evidence_path=None))
    kept = set(session.exec(select(ProtectedImage.stored_path)
                            .where(ProtectedImage.stored_path.in_(stored))).all())
    session.flush()
    coordination.bump(session, coordination.GALLERY)
    return Purged(ids, len(vids), gone, sorted(stored - kept))
