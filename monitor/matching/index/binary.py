"""Hamming-space index of fixed-length binary codes (pHash): exact, then binary IVF.

Each protected image contributes several codes under one gallery id (16 pHashes: 8
dihedral variants × trimmed/whole); searches report each id once, at its smallest
distance. Up to ``flat_max`` codes the index is exact: FAISS ``IndexBinaryIDMap`` over
``IndexBinaryFlat`` (``IndexBinaryIDMap2`` would need one code per id for its reverse
map). Above it, :meth:`BinaryIndex.train` (called by :meth:`save` when a flat index has
outgrown ``flat_max``) trains an ``IndexBinaryIVF`` (FAISS ``"BIVF{nlist}"``, a flat
Hamming coarse quantizer, ``nlist`` ≈ 4·√N up to :data:`NLIST_MAX`) on the codes held;
the inverted lists
store the gallery ids themselves, so ``add`` appends and ``remove`` calls
``remove_ids`` on the lists, without an id map and without retraining.

FAISS binary range search is strict (``distance < radius``), so searches pass
``max_distance + 1``. Saved and memory-mapped as described in
:mod:`~monitor.matching.index.faiss_io`; the first ``add``/``remove`` on a
memory-mapped index reads it whole first.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from monitor.matching.index.faiss_io import (
    IdSet,
    nlist_for,
    open_faiss,
    read_whole,
    rows,
    save_faiss,
    train_rows,
)

FLAT_MAX = 1_000_000
"""Codes searched exactly (62,500 images at 16 codes). Measured on corpus pHash codes
(bench/index_recall.py, 1 thread, 2 shared cores), p50 per query code: flat 0.48 ms at
1M codes, 1.2 ms at 3.2M, 6.1 ms at 16M; IVF (4096 lists, nprobe 512) 0.26 ms at 1M
(recall 0.99), 0.49 ms at 1.6M (0.987), 2.3 ms at 16M (0.97). Exact while it costs
under half a millisecond."""

NPROBE = 512
"""Lists visited per query code once IVF (1/8 of :data:`NLIST_MAX`). Measured at 16M
codes (1M images, bench/index_recall.py): nprobe 256 / 384 / 512 / 768 found 0.90 /
0.95 / 0.97 / 0.99 of the ids within 12 bits (exact search as truth; the image the
query was made from: 0.963 / 0.987 / 0.995 / 0.999) at p50 1.3 / 1.7 / 2.3 / 3.7 ms."""

NLIST_MAX = 4096
"""Most inverted lists (4·√N is 16,384 at 16M codes). Measured at 16M codes: 16,384
lists needed nprobe 1024 for recall 0.95 (2.3 ms p50) and took 243 s to train and fill
(2 threads); 4,096 lists reach 0.97 at nprobe 512 (2.3 ms) in 80 s (1 thread).
Hamming scans are cheap, so fewer, longer lists win."""

TRAIN_POINTS_PER_LIST = 40
"""Training sample per list (FAISS wiki: 30 to 256; k-means warns below 39), kept low
because binary k-means is the slow part of training; it runs on ±1 floats in
64-d for 10 iterations (``IndexBinaryIVF.cp``)."""


class BinaryIndex:
    """Hamming range search over ``(N, nbytes) uint8`` codes tagged with ``int64`` ids.

    Args:
        nbytes: code length in bytes (8 for a 64-bit pHash).
        flat_max: codes searched exactly; above it :meth:`save` trains a binary IVF
            index (:data:`FLAT_MAX`, measured).
        nprobe: lists visited per query code once IVF (:data:`NPROBE`, measured).
    """

    def __init__(self, nbytes: int = 8, *, flat_max: int = FLAT_MAX,
                 nprobe: int = NPROBE) -> None:
        self.nbytes, self.flat_max = int(nbytes), int(flat_max)
        self._nprobe, self._kind = int(nprobe), "flat"
        self._faiss = None
        self._source: Path | None = None  # the data file while memory-mapped
        self._ids = IdSet()

    def _index(self):
        """The FAISS index (an empty flat one is made on first use)."""
        if self._faiss is None:
            import faiss

            flat = faiss.IndexBinaryFlat(8 * self.nbytes)
            self._faiss = faiss.IndexBinaryIDMap(flat)
            self._faiss.own_fields = True
            flat.this.disown()
        return self._faiss

    def _writable(self):
        if self._source is not None:
            self._faiss, self._source = read_whole(self._faiss, self._source, True), None
            self.nprobe = self._nprobe
        return self._index()

    def __len__(self) -> int:
        """Distinct gallery ids held."""
        return len(self._ids)

    @property
    def ncodes(self) -> int:
        """Codes held (all ids)."""
        return int(self._index().ntotal)

    @property
    def kind(self) -> str:
        """``"flat"`` or the binary factory string of the trained index (``"BIVF4096"``)."""
        return self._kind

    @property
    def nprobe(self) -> int | None:
        """Lists visited per query code (None while flat; settable)."""
        return None if self._kind == "flat" else min(self._nprobe, self._index().nlist)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = int(value)
        if self._kind != "flat":
            self._index().nprobe = self._nprobe

    @property
    def memory_bytes(self) -> int:
        """Estimated bytes held, in RAM or mapped: codes, their ids, coarse centroids."""
        extra = 0 if self._kind == "flat" else self._index().nlist * self.nbytes
        return self.ncodes * (self.nbytes + 8) + extra + 8 * len(self._ids)

    def ids(self) -> np.ndarray:
        """``(M,) int64`` distinct gallery ids held, ascending (read-only)."""
        return self._ids.array()

    @property
    def codes(self) -> np.ndarray:
        """``(N, nbytes) uint8`` every code, in storage order (insertion order while flat;
        an O(N) copy kept for callers of the former flat index)."""
        import faiss
        from faiss.contrib.inspect_tools import get_invlist

        ix = self._index()
        if self._kind == "flat":
            xb = faiss.downcast_IndexBinary(ix.index).xb
            return faiss.vector_to_array(xb).reshape(-1, self.nbytes)
        parts = [get_invlist(ix.invlists, i)[1] for i in range(ix.nlist)
                 if ix.invlists.list_size(i)]
        return np.concatenate(parts) if parts else np.zeros((0, self.nbytes), np.uint8)

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Append ``codes`` ``(N, nbytes) uint8`` with ``ids`` ``(N,) int64`` (ids repeat
        for the codes of one image).

        Raises:
            ValueError: codes of another length, or ``len(ids) != N``.
        """
        c = rows(codes, self.nbytes, np.uint8)
        ids = np.ascontiguousarray(ids, np.int64).reshape(-1)
        if len(ids) != len(c):
            raise ValueError(f"{len(ids)} ids for {len(c)} codes")
        if len(c):
            self._writable().add_with_ids(c, ids)
            self._ids.add(ids)

    def remove(self, ids: list[int] | np.ndarray) -> int:
        """Drop every code tagged with one of ``ids`` (unknown ids are ignored); returns
        how many codes were removed. IVF lists are edited in place (no retraining)."""
        ids = np.unique(np.asarray(ids, np.int64).reshape(-1))
        ids = ids[self._ids.contains(ids)]
        if not len(ids):
            return 0
        removed = self._writable().remove_ids(ids)
        self._ids.remove(ids)
        return int(removed)

    def search(self, code: np.ndarray, max_distance: int,
               limit: int | None = None) -> list[tuple[int, int]]:
        """``[(id, distance_bits)]`` of the ids with a code within ``max_distance`` bits
        (inclusive) of ``code`` ``(nbytes,) uint8``: each id once at its smallest distance,
        nearest first, ties by id, at most ``limit`` (all when None)."""
        return self.search_many(rows(code, self.nbytes, np.uint8)[:1], max_distance, limit)

    def search_many(self, codes: np.ndarray, max_distance: int,
                    limit: int | None = None) -> list[tuple[int, int]]:
        """:meth:`search` over several query codes ``(Q, nbytes) uint8`` at once (one FAISS
        call): each id once at its smallest distance to any of them.

        Raises:
            ValueError: codes of another length.
        """
        q = rows(codes, self.nbytes, np.uint8)
        if not len(q) or not self.ncodes or max_distance < 0:
            return []
        _, dist, labels = self._index().range_search(q, int(max_distance) + 1)
        if not len(labels):
            return []
        dist = dist.astype(np.int64)  # FAISS range results hold float distances
        order = np.lexsort((labels, dist))
        labels, dist = labels[order], dist[order]
        _, first = np.unique(labels, return_index=True)
        first.sort()
        first = first[:limit] if limit is not None else first
        return list(zip(labels[first].tolist(), dist[first].tolist(), strict=True))

    def train(self) -> float:
        """Replace the flat index by a binary IVF one trained on the codes held (k-means
        on a sample of :data:`TRAIN_POINTS_PER_LIST` per list, then every code added);
        returns the seconds it took. A no-op (0.0) once IVF. Logs nothing.

        Raises:
            ValueError: fewer than 39 codes (see :func:`.faiss_io.nlist_for`).
        """
        if self._kind != "flat":
            return 0.0
        import faiss

        t0, flat, n = time.perf_counter(), self._index(), self.ncodes
        spec = f"BIVF{nlist_for(n, hi=NLIST_MAX)}"
        index = faiss.index_binary_factory(8 * self.nbytes, spec)
        xb = faiss.vector_to_array(faiss.downcast_IndexBinary(flat.index).xb)
        xb = xb.reshape(n, self.nbytes)
        sample = train_rows(n, index.nlist, TRAIN_POINTS_PER_LIST)
        index.train(xb if sample is None else np.ascontiguousarray(xb[sample]))
        index.add_with_ids(xb, faiss.vector_to_array(flat.id_map))
        self._faiss, self._kind, self._source = index, spec, None
        self.nprobe = self._nprobe
        return time.perf_counter() - t0

    def save(self, path: Path, fingerprint: str) -> None:
        """Save atomically; ``fingerprint`` identifies the gallery state it reflects.
        Trains IVF first when a flat index holds more than ``flat_max`` codes."""
        if self._kind == "flat" and self.ncodes > self.flat_max:
            self.train()
        save_faiss(path, fingerprint, self._index(), True, kind=np.array(self._kind),
                   nbytes=np.array(self.nbytes), ids=self._ids.array())

    @classmethod
    def load(cls, path: Path, fingerprint: str, nbytes: int = 8, mmap: bool = True, *,
             flat_max: int = FLAT_MAX, nprobe: int = NPROBE) -> BinaryIndex | None:
        """The saved index, or None when missing, stale, unreadable or of another code
        length (caller rebuilds). ``mmap``: map the codes instead of reading them
        (read-only until the first change, see the module docstring)."""
        opened = open_faiss(path, fingerprint, True, mmap)
        if opened is None:
            return None
        ix, meta, data = opened
        if "kind" not in meta or "ids" not in meta or ix.code_size != nbytes:
            return None
        out = cls(nbytes, flat_max=flat_max, nprobe=nprobe)
        out._faiss, out._kind, out._ids = ix, str(meta["kind"]), IdSet(meta["ids"])
        out._source = data if mmap else None
        out.nprobe = nprobe
        return out
