"""Persistent gallery records (local features + structure signature), read on demand.

Only a short list of gallery images is verified per candidate, so their records are
read from disk when needed and RAM does not grow with the gallery. A store folder
holds two files:

``features-<generation>.pack``
    Records back to back (encoding: :mod:`monitor.matching.index.records`), append
    only. Read through a read-only ``mmap``; a record is decoded by :meth:`FeatureStore.get`.
``features.table.npz``
    The table (:func:`~monitor.matching.index.base.save_arrays`, with fingerprint and
    ``FORMAT_VERSION``): per live gallery id, ascending, its record's byte offset and
    length in the pack, its original ``(w, h)`` and feature image ``(w, h)`` (-1 =
    none), plus the pack's generation. Kept in RAM: 40 bytes per record.

Saving appends the new records to the pack, fsyncs it, then atomically replaces the
table, so adding or removing an image never rewrites other records, and a crash between
the two steps only leaves unreferenced bytes at the pack's end. Replaced and removed
records stay in the pack as dead bytes until :meth:`FeatureStore.compact` copies the
live ones into a pack of the next generation, writes the table, and deletes the old
pack: a process still mapping the old pack keeps reading it (an unlinked file stays
readable on Linux) until its :meth:`FeatureStore.refresh`. One writing process per
folder is assumed. The byte-level pack writes and reads are in
:mod:`monitor.matching.index.feature_pack`, the decoded-record LRU in
:mod:`monitor.matching.index.record_cache`.
"""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

import numpy as np

from monitor.matching.index import feature_pack
from monitor.matching.index import records as rec
from monitor.matching.index.record_cache import RecordCache
from monitor.matching.index.records import GalleryRecord, RecordTable
from monitor.matching.stages.local_features import Features

__all__ = ["FeatureStore", "GalleryRecord"]

CACHE_RECORDS = 64
"""Decoded records kept by :meth:`FeatureStore.get` (LRU): a candidate's shortlist
(16-32 images) verified by several views or region proposals decodes each once."""

COMPACT_DEAD_SHARE = 0.5
""":meth:`FeatureStore.save` compacts when more than this share of the pack is dead…"""

COMPACT_DEAD_BYTES = 64 << 20
"""…and the dead bytes exceed this (64 MiB): small packs are not worth rewriting."""


class FeatureStore:
    """Append-only, memory-mapped store of one :class:`GalleryRecord` per gallery id.

    ``folder`` None keeps the encoded records in RAM (tests, benchmarks; :meth:`save`
    and :meth:`compact` do nothing). Otherwise this is a new, empty store in ``folder``
    (its first :meth:`save` supersedes what the folder held); use :meth:`open` to read
    an existing one. Reads (:meth:`get` and the lookups) are safe from several threads
    while nobody writes; writes take a lock.

    Attributes:
        reset: True when :meth:`open` found no usable store (missing, unreadable,
            stale fingerprint or format) and started empty: re-add the whole gallery.
    """

    def __init__(self, folder: Path | None = None, fingerprint: str = "") -> None:
        self.folder = None if folder is None else Path(folder)
        self.fingerprint = fingerprint
        self.reset = False
        self._lock = threading.RLock()
        self._cache = RecordCache()
        self._table = RecordTable.of([])
        self._pending: dict[int, feature_pack.Pending] = {}
        self._dropped: set[int] = set()  # table ids removed or replaced since the last save
        self._dirty = True
        self._map: mmap.mmap | None = None
        self._pack_size = 0
        self._stamp: tuple[int, int, int] | None = None
        self._generation = feature_pack.next_generation(self.folder)

    @classmethod
    def open(cls, folder: Path, fingerprint: str) -> FeatureStore:
        """The store saved in ``folder`` under ``fingerprint``, or a new empty one
        (``reset`` True) when it is missing, unreadable, of another fingerprint,
        ``FORMAT_VERSION`` or ``LAYOUT_VERSION``, or its non-empty pack is gone."""
        store = cls(folder, fingerprint)
        state = rec.open_table(store.folder, fingerprint)
        if state is None:
            store.reset = True
        else:
            store._table, store._generation, store._map, store._pack_size, store._stamp = state
            store._dirty = False
        return store

    def __len__(self) -> int:
        return len(self._table.ids) + len(self._pending)

    def __contains__(self, gallery_id: int) -> bool:
        return int(gallery_id) in self._pending or self._table.row(int(gallery_id)) >= 0

    def ids(self) -> list[int]:
        """Live gallery ids, ascending."""
        return np.union1d(self._table.ids, np.fromiter(self._pending, np.int64)).tolist()

    def add(self, gallery_id: int, record: GalleryRecord) -> None:
        """Add (or replace) the record of ``gallery_id``; held in RAM until :meth:`save`.

        Raises:
            ValueError: ``record`` cannot be encoded (features with a mirror view).
        """
        gid, meta = int(gallery_id), feature_pack.pending_entry(record)
        with self._lock:
            self._drop_rows([gid])
            self._pending[gid] = meta
            self._dirty = True
            self._cache.discard([gid])

    def remove(self, ids: list[int]) -> None:
        """Forget the records of ``ids`` (unknown ids are ignored); persisted by :meth:`save`."""
        with self._lock:
            ids = [int(i) for i in ids]
            for gid in ids:
                self._dirty |= self._pending.pop(gid, None) is not None
            self._drop_rows(ids)
            self._cache.discard(ids)

    def get(self, gallery_id: int) -> GalleryRecord | None:
        """The record of ``gallery_id`` (decoded from the pack), or None when unknown.

        Raises:
            ValueError: the record is truncated or corrupt (names the gallery id).
        """
        gid = int(gallery_id)
        if (hit := self._cache.get(gid)) is not None:
            return hit
        where, pending = "unsaved", self._pending.get(gid)
        if pending is not None:
            blob = pending[0]
        else:
            table, mm = self._table, self._map
            i = table.row(gid)
            if i < 0:
                return None
            name = rec.pack_path(self.folder, self._generation).name
            blob, where = feature_pack.read_record(mm, table, i, name)
        try:
            record = rec.decode_record(blob)
        except ValueError as e:
            raise ValueError(f"feature record of gallery id {gid} is corrupt ({where}): {e}"
                             ) from e
        self._cache.put(gid, record, CACHE_RECORDS)
        return record

    def features(self, gallery_id: int) -> list[Features]:
        """The views of ``gallery_id`` to verify a candidate against: ``[features]``, or
        empty when unknown or stored without features (same contract as ``LocalIndex``).

        Raises:
            ValueError: the record is corrupt (see :meth:`get`).
        """
        record = self.get(gallery_id)
        return [] if record is None or record.features is None else [record.features]

    def signature(self, gallery_id: int) -> np.ndarray | None:
        """The structure signature ``(D,) float16`` of ``gallery_id``, or None.

        Raises:
            ValueError: the record is corrupt (see :meth:`get`).
        """
        record = self.get(gallery_id)
        return None if record is None else record.signature

    def original_size(self, gallery_id: int) -> tuple[int, int] | None:
        """``(width, height)`` in pixels of the protected image's original, or None when
        unknown or not recorded; from the table, nothing is decoded."""
        gid = int(gallery_id)
        if gid in self._pending:
            return self._pending[gid][1]
        return self._table.pair(self._table.originals, gid)

    def feature_size(self, gallery_id: int) -> tuple[int, int] | None:
        """``features.size`` ``(width, height)`` in pixels of ``gallery_id``'s feature
        image, or None (unknown, or no features); from the table, nothing is decoded."""
        gid = int(gallery_id)
        if gid in self._pending:
            return self._pending[gid][2]
        return self._table.pair(self._table.sizes, gid)

    @property
    def cached_records(self) -> int:
        """Decoded records currently held by the LRU (at most :data:`CACHE_RECORDS`)."""
        return len(self._cache)

    @property
    def disk_bytes(self) -> int:
        """Bytes of the pack and table files (memory mode: of the encoded records)."""
        if self.folder is None:
            return sum(len(m[0]) for m in self._pending.values())
        table = self.folder / rec.TABLE_NAME
        return self._pack_size + (table.stat().st_size if table.exists() else 0)

    @property
    def dead_share(self) -> float:
        """Share in [0, 1] of the pack's bytes that no live id points to (0 when empty)."""
        size = self._pack_size
        return (size - int(self._table.lengths.sum())) / size if size else 0.0

    def save(self) -> None:
        """Append pending records to the pack (fsynced), then atomically replace the table;
        compacts when dead bytes pass :data:`COMPACT_DEAD_SHARE` and
        :data:`COMPACT_DEAD_BYTES`. No-op in memory mode or when nothing changed.

        Raises:
            OSError: the folder cannot be written.
        """
        if self.folder is None:
            return
        with self._lock:
            if not self._dirty and (self.folder / rec.TABLE_NAME).exists():
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            pack = rec.pack_path(self.folder, self._generation)
            fresh = not pack.exists()
            with open(pack, "ab") as fh:
                rows = feature_pack.append_pending(fh, fh.seek(0, os.SEEK_END), self._pending)
            if fresh:
                rec.fsync_dir(self.folder)
            self._commit(self._table.join(RecordTable.of(rows)), self._generation)
            if (self.dead_share > COMPACT_DEAD_SHARE
                    and self._pack_size - int(self._table.lengths.sum()) > COMPACT_DEAD_BYTES):
                self.compact()

    def compact(self) -> None:
        """Rewrite the live (and pending) records into a pack of the next generation, write
        the table, delete the old pack. No-op in memory mode.

        Raises:
            ValueError: a live record is truncated (the old pack is kept).
            OSError: the folder cannot be written.
        """
        if self.folder is None:
            return
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            gen = self._generation + 1
            table = feature_pack.write_compacted(rec.pack_path(self.folder, gen), self._table,
                                                 self._map, self._pending)
            rec.fsync_dir(self.folder)
            self._commit(table, gen)

    def refresh(self) -> bool:
        """Re-read the table when another process saved since (table file replaced);
        unsaved adds and removals of this instance still apply. True when re-read."""
        if self.folder is None:
            return False
        with self._lock:
            stamp = rec.file_stamp(self.folder / rec.TABLE_NAME)
            if stamp is None or stamp == self._stamp:
                return False
            state = rec.open_table(self.folder, self.fingerprint)
            if state is None:
                return False
            self._table, self._generation, self._map, self._pack_size, self._stamp = state
            self._table = self._table.take(~np.isin(
                self._table.ids, [*self._pending, *self._dropped]))
            self._cache.clear()
            return True

    def _drop_rows(self, ids: list[int]) -> None:
        """Take ``ids`` out of the table (their pack bytes become dead)."""
        mask = np.isin(self._table.ids, ids)
        if mask.any():
            self._dropped.update(self._table.ids[mask].tolist())
            self._table = self._table.take(~mask)
            self._dirty = True

    def _commit(self, table: RecordTable, generation: int) -> None:
        """Write ``table`` (pack ``generation`` already durable), map that pack, clear the
        pending state and delete packs of other generations."""
        assert self.folder is not None
        path = self.folder / rec.TABLE_NAME
        rec.write_table(path, self.fingerprint, table, generation)
        self._stamp = rec.file_stamp(path)
        self._table, self._generation = table, generation
        self._map, self._pack_size = rec.map_pack(rec.pack_path(self.folder, generation))
        self._pending.clear()
        self._dropped.clear()
        self._dirty = False
        feature_pack.remove_other_packs(self.folder, generation)
