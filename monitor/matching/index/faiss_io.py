"""Shared by the retrieval indices (:mod:`.dense`, :mod:`.binary`): IVF sizing, the
distinct-id set, and saving/loading a FAISS index with its sidecar.

On disk an index is two files: the FAISS index ``<path>.<token>.faiss`` (written to a
temporary file, fsynced, renamed) and, at ``path``, a small npz
(:func:`~monitor.matching.index.base.save_arrays`: fingerprint, format version) naming
that file plus the index's own metadata. The npz is replaced last, so a crash leaves the
previous pair intact; older data files are deleted after it. A data file is never
rewritten, so a memory-mapped one stays valid (and re-readable while it exists).

Loading with ``mmap`` uses ``faiss.IO_FLAG_MMAP_IFC`` (FAISS ≥ 1.11): ``IndexFlatCodes``
storage and ``ArrayInvertedLists`` become views of the file, so opening reads the
sidecar and coarse centroids, not the codes (measured with faiss 1.15.1 in a fresh
process, bench/index_recall.py: the 512 MB SQ8 index of 1M vectors opens in 17 ms and
+10 MB RSS, the 252 MB binary index of 16M codes in 20 ms, +10 MB; pages are then read
as searches touch them, as reclaimable file-backed memory). FAISS *aborts the process*
when such a view is resized (``MaybeOwnedVector``), so an index
must be made whole (:func:`read_whole`) before any change; ``IO_FLAG_MMAP`` (read-only
``OnDiskInvertedLists``) maps IVF lists only and throws from ``remove_ids`` inside an
OpenMP region (also fatal), hence not used.
"""

from __future__ import annotations

import glob
import math
import os
import secrets
from array import array
from pathlib import Path

import numpy as np

from monitor.matching.index.base import load_arrays, save_arrays

MIN_POINTS_PER_LIST = 39
"""FAISS k-means warns below 39 training points per centroid
(``ClusteringParameters.min_points_per_centroid``)."""

LAYOUT = 1
"""Layout of the npz sidecar written by :func:`save_faiss`; another one is stale."""


def nlist_for(n: int, lo: int = 256, hi: int = 65536) -> int:
    """Inverted lists for ``n`` entries: the power of two nearest 4·√n (FAISS wiki,
    "Guidelines to choose an index": 4·√N to 16·√N), within [``lo``, ``hi``], then
    halved until each list has :data:`MIN_POINTS_PER_LIST` training points.

    Raises:
        ValueError: ``n`` is below :data:`MIN_POINTS_PER_LIST` (nothing to train on).
    """
    if n < MIN_POINTS_PER_LIST:
        raise ValueError(f"{n} entries are too few to train an IVF index")
    nlist = min(max(2 ** round(math.log2(4 * math.sqrt(n))), lo), hi)
    return min(nlist, 2 ** int(math.log2(n // MIN_POINTS_PER_LIST)))


def train_rows(n: int, nlist: int, per_list: int) -> np.ndarray | None:
    """Sorted rows of a seeded sample of ``per_list · nlist`` out of ``n`` (None: all)."""
    m = per_list * nlist
    return None if m >= n else np.sort(np.random.default_rng(0).choice(n, m, replace=False))


class IdSet:
    """The distinct gallery ids of an index, kept without rescanning it: a sorted array
    plus the ids added since, merged when read (``searchsorted`` and one O(N) copy:
    numpy 2.4's set routines took 0.85 s at 1M ids, measured)."""

    def __init__(self, ids: np.ndarray | None = None) -> None:
        a = np.asarray(ids if ids is not None else [], np.int64).reshape(-1)
        self._sorted = a if np.all(a[1:] > a[:-1]) else np.unique(a)
        self._pending = array("q")

    def add(self, ids: np.ndarray) -> None:
        """Note ``ids`` ``(N,) int64`` as held."""
        self._pending.frombytes(np.ascontiguousarray(ids, np.int64).tobytes())

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """``(N,) bool``: which of ``ids`` are held."""
        return _member(self.array(), np.asarray(ids, np.int64).reshape(-1))

    def remove(self, ids: np.ndarray) -> None:
        """Note ``ids`` as gone (every entry of each)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        ids = ids[self.contains(ids)]
        self._sorted = np.delete(self._sorted, np.searchsorted(self._sorted, ids))

    def array(self) -> np.ndarray:
        """``(M,) int64`` distinct ids, ascending (read-only)."""
        if self._pending:
            new = np.sort(np.frombuffer(self._pending, np.int64))
            new = new[np.concatenate([[True], new[1:] != new[:-1]])]
            fresh = new[~_member(self._sorted, new)]
            self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, fresh), fresh)
            self._pending = array("q")
        self._sorted.flags.writeable = False
        return self._sorted

    def __len__(self) -> int:
        """Distinct ids held."""
        return len(self.array())


def _member(held: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``(N,) bool``: which of ``ids`` are in the sorted array ``held``."""
    if not len(held):
        return np.zeros(len(ids), bool)
    return held[np.minimum(np.searchsorted(held, ids), len(held) - 1)] == ids


def save_faiss(path: Path, fingerprint: str, index, binary: bool, **meta: np.ndarray) -> None:
    """Write ``index`` to a fresh ``<path>.<token>.faiss``, then the sidecar npz at ``path``
    naming it (with ``meta``), then delete older data files of ``path``.

    Raises:
        OSError, RuntimeError (FAISS): the folder is not writable; nothing is replaced.
    """
    import faiss

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = path.with_name(f"{path.name}.{secrets.token_hex(8)}.faiss")
    tmp = data.with_name(f".{data.name}.tmp")
    try:
        (faiss.write_index_binary if binary else faiss.write_index)(index, str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, data)
        save_arrays(path, fingerprint, data=np.array(data.name), layout=np.array(LAYOUT), **meta)
    except BaseException:
        tmp.unlink(missing_ok=True)
        data.unlink(missing_ok=True)
        raise
    for old in path.parent.glob(glob.escape(path.name) + ".*.faiss"):
        if old != data:
            old.unlink(missing_ok=True)


def open_faiss(path: Path, fingerprint: str, binary: bool, mmap: bool
               ) -> tuple[object, dict[str, np.ndarray], Path] | None:
    """``(FAISS index, sidecar arrays, data file)`` saved by :func:`save_faiss`, or None
    when missing, stale (fingerprint, format) or unreadable."""
    import faiss

    meta = load_arrays(Path(path), fingerprint)
    if meta is None or "data" not in meta or int(meta.get("layout", -1)) != LAYOUT:
        return None
    data = Path(path).with_name(str(meta["data"]))
    read = faiss.read_index_binary if binary else faiss.read_index
    try:
        return read(str(data), faiss.IO_FLAG_MMAP_IFC if mmap else 0), meta, data
    except (RuntimeError, OSError):
        return None


def read_whole(index, source: Path, binary: bool):
    """A writable in-memory copy of the memory-mapped ``index`` opened from ``source``:
    the file read again when it still exists, else a copy through ``serialize_index``."""
    import faiss

    if source.is_file():
        try:
            return (faiss.read_index_binary if binary else faiss.read_index)(str(source))
        except RuntimeError:
            pass
    if binary:
        return faiss.deserialize_index_binary(faiss.serialize_index_binary(index))
    return faiss.deserialize_index(faiss.serialize_index(index))


def rows(x: np.ndarray, width: int, dtype) -> np.ndarray:
    """``x`` as C-contiguous ``(N, width)`` of ``dtype``: any array whose last axis is
    ``width`` wide, or a 1-D run of whole rows.

    Raises:
        ValueError: rows of another width.
    """
    a = np.asarray(x, dtype)
    if (a.shape[-1] if a.ndim > 1 else a.size % width or width) != width:
        raise ValueError(f"rows of width {a.shape[-1]}, the index holds {width}")
    return np.ascontiguousarray(a.reshape(-1, width))
