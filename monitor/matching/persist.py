"""Saving an engine's indices and reconciling them with the gallery at start-up.

Under the index folder (``<data_dir>/indices``):

* ``hash.npz``, ``descriptor.npz``, ``clip.npz``, each naming its FAISS data file: the
  retrieval indices (:mod:`~monitor.matching.index.binary`,
  :mod:`~monitor.matching.index.dense`), each with its fingerprint; memory-mapped at
  start-up (``retrieval.mmap``), so start-up reads their metadata, not every vector;
* ``features/``: the verification records (:mod:`~monitor.matching.index.features`),
  append-only and memory-mapped;
* ``vote.npz``: the keypoint vote of a small gallery (:class:`~.index.local.VoteIndex`).

Start-up (:func:`load`) opens what is saved and compares each index's gallery ids with
the ``live`` ids of the database: extra ids are removed, missing ones fetched (only those
rows) and added; a file of another fingerprint (other model or settings) starts empty
and is rebuilt the same way. So a restart after adding ten images costs ten images,
not the gallery.
"""

from __future__ import annotations

import copy
import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from monitor.matching.index.binary import BinaryIndex
from monitor.matching.index.dense import DenseIndex
from monitor.matching.index.features import FeatureStore
from monitor.matching.index.local import LocalIndex

if TYPE_CHECKING:
    from monitor.matching.engine import Engine, GalleryEntry

HASH_FINGERPRINT = "phash-v1|16"
"""Identifies the pHash codes indexed (imagehash pHash, 16 dihedral/trim variants)."""

LEGACY_FILES = ("local.npz", "structure.npz")
"""Index files of monitor before the feature store (whole-gallery npz files), deleted at
the first save: their content is rebuilt into ``features/`` at the first start."""

FETCH_BATCH = 256
"""Gallery rows fetched (and, for missing records, decoded) per round when reconciling."""


def save(engine: Engine, folder: Path) -> None:
    """Save every index under ``folder``: retrieval indices rewritten atomically, the
    feature store appended (only new records), the vote index when kept.

    Several processes may save one folder (``monitor serve`` beside a ``gallery add``, or
    api processes): each save holds an exclusive ``flock`` on ``folder/.lock`` and first
    reads the records others saved (:meth:`LocalIndex.refresh`), so none is lost from the
    shared feature store. The retrieval files are snapshots of the saver's memory; one
    that lacks another process's latest change is caught up by the reconcile of whoever
    opens it (:func:`reconcile` compares ids with the database)."""
    folder = Path(folder)
    with locked(folder):
        engine.local_index.refresh()
        _save_locked(engine, folder)


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the index folder's exclusive lock (``flock`` on ``folder/.lock``; the folder is
    made): no other process saves into it meanwhile, so a copy taken inside is whole."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _save_locked(engine: Engine, folder: Path) -> None:
    engine.hash_index.save(folder / "hash.npz", HASH_FINGERPRINT)
    for name, index, stage in (("descriptor", engine.descriptor_index, engine.descriptor),
                               ("clip", engine.clip_index, engine.clip)):
        if index is not None and stage is not None:
            index.save(folder / f"{name}.npz", stage.fingerprint)
    engine.local_index.save(folder, engine.fingerprint())
    for old in LEGACY_FILES:  # superseded by the feature store: never read again
        (folder / old).unlink(missing_ok=True)


def _open(engine: Engine, folder: Path, size: int) -> None:
    """Open the saved indices of ``folder`` (empty ones where missing or stale)."""
    r, mmap = engine.settings.retrieval, engine.settings.retrieval.mmap
    engine.hash_index = (BinaryIndex.load(folder / "hash.npz", HASH_FINGERPRINT, mmap=mmap,
                                          flat_max=r.hash_flat_max)
                         or BinaryIndex(8, flat_max=r.hash_flat_max))
    engine.descriptor_index = engine.clip_index = None
    if engine.descriptor_ready():
        engine.descriptor_index = DenseIndex.load(
            folder / "descriptor.npz", engine.descriptor.fingerprint, engine.descriptor.dim,
            mmap=mmap, flat_max=r.dense_flat_max)
    if engine.clip_ready():
        engine.clip_index = DenseIndex.load(folder / "clip.npz", engine.clip.fingerprint,
                                            None, mmap=mmap, flat_max=r.dense_flat_max)
    fp, vote = engine.fingerprint(), engine.wants_vote(size)
    engine.local_index = (LocalIndex.load(folder, fp, vote=vote)
                          or LocalIndex(FeatureStore(folder / "features", fp), vote=vote))


def _missing(have: np.ndarray, live: np.ndarray) -> set[int]:
    return set(np.setdiff1d(live, have).tolist())


def load(engine: Engine, folder: Path, live: np.ndarray,
         fetch: Callable[[list[int]], list[GalleryEntry]],
         progress: Callable[[int], None] | None = None) -> bool:
    """Open the saved indices under ``folder`` and reconcile them with ``live`` (``(N,)
    int64`` ids of the protected images to match; :func:`reconcile`). Returns True when
    any index changed (the caller saves)."""
    live = np.unique(np.asarray(live, np.int64))
    _open(engine, Path(folder), len(live))
    return reconcile(engine, live, fetch, progress)


def reconcile(engine: Engine, live: np.ndarray,
              fetch: Callable[[list[int]], list[GalleryEntry]],
              progress: Callable[[int], None] | None = None) -> bool:
    """Bring the engine's open indices to the gallery ids ``live``: ids no longer live are
    removed, missing ones fetched (``fetch(ids)`` returns their
    :class:`~monitor.matching.engine.GalleryEntry`, vectors of the current models filled
    in where it can) and added; ``progress(n)`` is told of every image added. Verification
    records another process saved to the shared feature store since are read first
    (:meth:`FeatureStore.refresh`), so they are not computed again. The caller holds the
    gallery's write lock. Returns True when any index changed."""
    live = np.unique(np.asarray(live, np.int64))
    engine.local_index.refresh()
    changed = False
    for index in _indices(engine):
        extra = np.setdiff1d(index.ids(), live).tolist()
        if extra:
            index.remove(extra)
            changed = True
    local = engine.local is not None or engine.descriptor_ready()
    need_hash = _missing(engine.hash_index.ids(), live)
    need_record = _missing(np.asarray(engine.local_index.ids(), np.int64), live) if local \
        else set()
    need_desc = (_missing(_ids(engine.descriptor_index), live)
                 if engine.descriptor_ready() else set())
    need_clip = _missing(_ids(engine.clip_index), live) if engine.clip_ready() else set()
    wanted = sorted(need_hash | need_record | need_desc | need_clip)
    for start in range(0, len(wanted), FETCH_BATCH):
        for entry in fetch(wanted[start:start + FETCH_BATCH]):
            _add(engine, entry, entry.gallery_id in need_hash, entry.gallery_id in need_desc,
                 entry.gallery_id in need_clip, entry.gallery_id in need_record)
            if progress:
                progress(1)
    return changed or bool(wanted)


def _add(engine: Engine, entry: GalleryEntry, hashed: bool, described: bool, clipped: bool,
         record: bool) -> None:
    """Add ``entry`` to the indices that lack it."""
    if hashed or described or clipped:
        engine.add_signals(replace(entry, phash=entry.phash if hashed else entry.phash[:0],
                                   descriptor=entry.descriptor if described else None,
                                   clip=entry.clip if clipped else None))
    if record:
        engine.add_record(entry)


def _ids(index: DenseIndex | None) -> np.ndarray:
    return index.ids() if index is not None else np.zeros(0, np.int64)


def _indices(engine: Engine) -> list:
    """Every index whose ids are reconciled (those that exist)."""
    out = [engine.hash_index, engine.local_index]
    return out + [i for i in (engine.descriptor_index, engine.clip_index) if i is not None]


@dataclass(frozen=True)
class Rebuilt:
    """One retrieval index rebuilt by :func:`rebuild`.

    Attributes:
        name: ``hash``, ``descriptor`` or ``clip``.
        images: gallery images it holds.
        kind: ``flat`` or the FAISS factory string it was trained as.
        seconds: wall time to fill and train it.
    """

    name: str
    images: int
    kind: str
    seconds: float


def rebuild(engine: Engine, live: np.ndarray, fetch: Callable[[list[int]], list[GalleryEntry]],
            progress: Callable[[int], None] | None = None) -> list[Rebuilt]:
    """Rebuild the retrieval indices from the gallery's stored signals (``fetch``, by
    batches of ``live`` ids), each trained afresh for its size: an IVF index trained when
    the gallery was small keeps lists sized for then; this sizes them for now. The
    engine keeps answering from the old indices until the new ones replace them at the
    end, so an interrupted rebuild leaves everything as it was (run it again). The
    caller saves. Returns what was built, with the time each took."""
    t0 = time.perf_counter()
    shadow = copy.copy(engine)  # the same stages and settings, new empty indices
    shadow.hash_index = BinaryIndex(8, flat_max=engine.settings.retrieval.hash_flat_max)
    shadow.descriptor_index = shadow.clip_index = None
    for start in range(0, len(live), FETCH_BATCH * 16):
        for entry in fetch([int(i) for i in live[start:start + FETCH_BATCH * 16]]):
            shadow.add_signals(entry)
            if progress:
                progress(1)
    filled = time.perf_counter() - t0
    out = []
    for name in ("hash", "descriptor", "clip"):
        index = getattr(shadow, f"{name}_index")
        if index is None:
            continue
        t1 = time.perf_counter()
        if (index.ncodes if name == "hash" else len(index)) > index.flat_max:
            index.train()
        out.append(Rebuilt(name, len(index), index.kind, filled + time.perf_counter() - t1))
    engine.hash_index = shadow.hash_index
    engine.descriptor_index = shadow.descriptor_index
    engine.clip_index = shadow.clip_index
    return out
