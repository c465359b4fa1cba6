"""Pack files of :class:`~monitor.matching.index.features.FeatureStore`: the byte-level work.

A pack, ``features-<generation>.pack``, holds encoded records back to back. This module
encodes a record for the store's unsaved set (:func:`pending_entry`), appends unsaved
records to a pack (:func:`append_pending`), copies the live records and the unsaved ones
into a pack of the next generation (:func:`write_compacted`), reads one record out of a
mapped pack (:func:`read_record`), and finds and deletes generations
(:func:`next_generation`, :func:`remove_other_packs`).

The store keeps the locking, the table in RAM, the decode cache and the decisions of when
to save and compact; the record and table encodings are in
:mod:`monitor.matching.index.records`.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from monitor.matching.index import records as rec
from monitor.matching.index.records import GalleryRecord, RecordTable

Pending = tuple[bytes, tuple[int, int] | None, tuple[int, int] | None]
"""An unsaved record: its bytes, ``features.original`` and ``features.size`` (or None)."""

PACK_GLOB = "features-*.pack"
"""Glob for candidate pack names in a store folder (confirmed by ``records.PACK_NAME``)."""


def pending_entry(record: GalleryRecord) -> Pending:
    """``record`` encoded (:func:`~monitor.matching.index.records.encode_record`), with the
    original and feature image sizes its table row will hold.

    Raises:
        ValueError: ``record`` cannot be encoded (features with a mirror view).
    """
    f = record.features
    return (rec.encode_record(record), None if f is None or f.original is None
            else (int(f.original[0]), int(f.original[1])),
            None if f is None else (int(f.size[0]), int(f.size[1])))


def next_generation(folder: Path | None) -> int:
    """One past the highest generation among the packs in ``folder`` (1 when there are
    none, or ``folder`` is None)."""
    gens = [int(m[1]) for p in folder.glob(PACK_GLOB)
            if (m := rec.PACK_NAME.fullmatch(p.name))] if folder is not None else []
    return max(gens, default=0) + 1


def read_record(mm: mmap.mmap | None, table: RecordTable, row: int,
                name: str) -> tuple[bytes, str]:
    """The bytes of the record at ``row`` of ``table`` in the mapped pack ``mm`` (file
    ``name``), and where they were read (``"<name> at byte <offset>"``, for errors).

    Raises:
        ValueError: the pack is shorter: the record is truncated (names its gallery id).
    """
    off, n = int(table.offsets[row]), int(table.lengths[row])
    where = f"{name} at byte {off}"
    if mm is None or off + n > len(mm):
        raise ValueError(f"feature record of gallery id {int(table.ids[row])} is truncated "
                         f"({where}, {n} bytes, pack holds {0 if mm is None else len(mm)})")
    return mm[off:off + n], where


def append_pending(fh: BinaryIO, pos: int, pending: Mapping[int, Pending]) -> list[rec.Row]:
    """Write the ``pending`` records, by ascending id, at ``pos`` of ``fh`` (flushed,
    fsynced); their rows."""
    rows = []
    for gid in sorted(pending):
        blob, original, size = pending[gid]
        rows.append((gid, pos, len(blob), original, size))
        pos += fh.write(blob)
    fh.flush()
    os.fsync(fh.fileno())
    return rows


def write_compacted(path: Path, table: RecordTable, mm: mmap.mmap | None,
                    pending: Mapping[int, Pending]) -> RecordTable:
    """Write a new pack at ``path``: the live records of ``table`` (read from its mapped
    pack ``mm``, in pack order), then the ``pending`` ones (flushed, fsynced). Returns the
    table locating them all in the new pack; the folder entry is not fsynced here.

    Raises:
        ValueError: a live record is truncated (``path`` is deleted again).
        OSError: ``path`` cannot be written.
    """
    offsets = np.empty_like(table.offsets)
    with open(path, "wb") as fh:
        pos = 0
        for i in np.argsort(table.offsets, kind="stable"):
            off, n = int(table.offsets[i]), int(table.lengths[i])
            chunk = b"" if mm is None else mm[off:off + n]
            if len(chunk) != n:
                fh.close()
                path.unlink()
                raise ValueError(f"feature record of gallery id {table.ids[i]} is "
                                 "truncated; not compacting")
            offsets[i], pos = pos, pos + fh.write(chunk)
        rows = append_pending(fh, pos, pending)
    moved = RecordTable(table.ids, offsets, table.lengths, table.originals, table.sizes)
    return moved.join(RecordTable.of(rows))


def remove_other_packs(folder: Path, generation: int) -> None:
    """Delete the packs in ``folder`` of every generation but ``generation``."""
    current = rec.pack_path(folder, generation).name
    for p in folder.glob(PACK_GLOB):
        if rec.PACK_NAME.fullmatch(p.name) and p.name != current:
            p.unlink(missing_ok=True)
