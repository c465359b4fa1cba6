"""Repository of the protected gallery: the SQL over ``ProtectedImage`` and ``Collection``.

Every function takes an open :class:`~sqlmodel.Session` (from
:meth:`monitor.store.Store.session`) and leaves committing to the caller, so the
services layer decides what one transaction holds; :func:`ping` takes the engine.
Rows come back detached-safe (the store's sessions do not expire on commit).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, update
from sqlmodel import Session, select

from monitor.errors import NotFound
from monitor.store.models import Collection, MatchRow, ProtectedImage, Violation

MIN_SHA_PREFIX = 8
"""Hex digits a sha256 prefix needs before :func:`resolve_refs` looks it up."""


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
    """Ids of the protected images in the collection called ``name``.

    Raises:
        NotFound: no collection has this name.
    """
    coll = find_collection(session, name)
    if coll is None:
        raise NotFound(f"no collection named {name!r}")
    q = select(ProtectedImage.id).where(ProtectedImage.collection_id == coll.id)
    return set(session.exec(q).all())


def find_image(session: Session, collection: str, sha256: str) -> ProtectedImage | None:
    """The image with content ``sha256`` (64 hex digits) in the collection called
    ``collection``, or None (also when the collection does not exist)."""
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
    return row


def list_images(session: Session, collection: str | None = None
                ) -> list[tuple[ProtectedImage, str]]:
    """``(row, collection name)`` of every protected image, by id; only the collection
    called ``collection`` when given (an unknown name gives an empty list)."""
    q = (select(ProtectedImage, Collection.name).join(Collection)
         .order_by(ProtectedImage.id))
    if collection:
        q = q.where(Collection.name == collection)
    return [(p, name) for p, name in session.exec(q).all()]


def labels(session: Session) -> list[tuple[int, str, str, str]]:
    """``(id, path, collection name, meta_json)`` of every protected image: what results
    name a gallery match by, without the signal columns (pHash, CLIP vector)."""
    q = select(ProtectedImage.id, ProtectedImage.path, Collection.name,
               ProtectedImage.meta_json).join(Collection)
    return [tuple(r) for r in session.exec(q).all()]


def phashes(session: Session, collection: str | None) -> dict[int, str]:
    """``{id: phash hex}`` of the images in the collection called ``collection`` (every
    image when it is None or empty), by id; empty when there is no such collection."""
    q = (select(ProtectedImage.id, ProtectedImage.phash).join(Collection)
         .order_by(ProtectedImage.id))
    if collection:
        q = q.where(Collection.name == collection)
    return {gid: ph for gid, ph in session.exec(q).all()}


def set_clip_vectors(session: Session, vectors: Iterable[tuple[int, bytes]], model: str) -> None:
    """Store CLIP embeddings: ``(image id, float32 vector bytes)`` pairs, tagged ``model``
    (the CLIP fingerprint); one executemany UPDATE. The caller commits."""
    params = [{"id": gid, "clip_vector": vec, "clip_model": model} for gid, vec in vectors]
    if params:
        session.execute(update(ProtectedImage), params)


def set_path(session: Session, image_id: int, path: str) -> None:
    """Change the recorded original path of image ``image_id`` (e.g. ``upload:name``)."""
    session.execute(update(ProtectedImage).where(ProtectedImage.id == image_id)
                    .values(path=path))


def resolve_refs(session: Session, refs: Iterable[str]) -> list[int]:
    """Image ids named by ``refs``, in order: each ref is an id (decimal digits) or a
    sha256 prefix of at least :data:`MIN_SHA_PREFIX` hex digits (may match several
    images; ids repeat when refs overlap).

    Raises:
        NotFound: a ref names no image (or is a prefix too short to look up).
    """
    ids: list[int] = []
    for ref in refs:
        q = select(ProtectedImage.id).order_by(ProtectedImage.id)
        q = (q.where(ProtectedImage.id == int(ref)) if ref.isdigit()
             else q.where(ProtectedImage.sha256.startswith(ref.lower())))
        found = session.exec(q).all() if ref.isdigit() or len(ref) >= MIN_SHA_PREFIX else []
        if not found:
            raise NotFound(f"no protected image with id or sha256 {ref!r}")
        ids += found
    return ids


def delete_images(session: Session, ids: list[int]) -> None:
    """Delete images ``ids`` with their violations and match rows; the caller commits.

    Raises:
        sqlalchemy.exc.IntegrityError: rows still refer to one of their violations
            (alerts, review events).
    """
    for model in (Violation, MatchRow, ProtectedImage):
        column = model.id if model is ProtectedImage else model.protected_id
        session.execute(delete(model).where(column.in_(ids)))
    session.flush()
