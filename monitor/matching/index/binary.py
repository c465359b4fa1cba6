"""Hamming-space index of fixed-length binary codes (FAISS ``IndexBinaryFlat``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.matching.index.base import load_arrays, save_arrays


class BinaryIndex:
    """Exact Hamming range search over ``(N, nbytes) uint8`` codes, each tagged with an id.

    Several codes may share an id (the 8 dihedral variants of one gallery image);
    :meth:`search` reports each id once with its smallest distance.
    FAISS builds lazily on first search; FAISS binary range search is strict
    (``distance < radius``), so :meth:`search` passes ``max_distance + 1``.
    """

    def __init__(self, nbytes: int = 8) -> None:
        self.nbytes = nbytes
        self.codes = np.zeros((0, nbytes), np.uint8)
        self.ids = np.zeros((0,), np.int64)
        self._faiss = None

    def __len__(self) -> int:
        return len(np.unique(self.ids))

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Append ``codes`` ``(N, nbytes) uint8`` with ``ids`` ``(N,) int64``."""
        codes = np.ascontiguousarray(codes, np.uint8).reshape(-1, self.nbytes)
        self.codes = np.concatenate([self.codes, codes])
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64).reshape(-1)])
        self._faiss = None

    def remove(self, ids: list[int]) -> None:
        """Drop every code tagged with one of ``ids``."""
        keep = ~np.isin(self.ids, np.asarray(ids, np.int64))
        self.codes, self.ids, self._faiss = self.codes[keep], self.ids[keep], None

    def _index(self):
        if self._faiss is None:
            import faiss

            self._faiss = faiss.IndexBinaryFlat(self.nbytes * 8)
            if len(self.codes):
                self._faiss.add(self.codes)
        return self._faiss

    def search(self, code: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
        """``[(id, distance_bits)]`` with distance ``<= max_distance``, nearest first."""
        if not len(self.codes):
            return []
        q = np.ascontiguousarray(code, np.uint8).reshape(1, self.nbytes)
        lims, dist, labels = self._index().range_search(q, max_distance + 1)
        best: dict[int, int] = {}
        for d, lab in zip(dist[lims[0]:lims[1]], labels[lims[0]:lims[1]], strict=True):
            gid = int(self.ids[lab])
            best[gid] = min(int(d), best.get(gid, 1 << 30))
        return sorted(best.items(), key=lambda kv: (kv[1], kv[0]))

    def save(self, path: Path, fingerprint: str) -> None:
        """Save atomically; ``fingerprint`` identifies the gallery state it reflects."""
        save_arrays(path, fingerprint, codes=self.codes, ids=self.ids)

    @classmethod
    def load(cls, path: Path, fingerprint: str, nbytes: int = 8) -> BinaryIndex | None:
        """The saved index, or None when missing or stale (caller rebuilds)."""
        arrays = load_arrays(path, fingerprint)
        if arrays is None:
            return None
        index = cls(nbytes)
        index.add(arrays["ids"], arrays["codes"])
        return index
