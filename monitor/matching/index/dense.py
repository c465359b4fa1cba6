"""Inner-product index of L2-normalised float vectors (FAISS ``IndexFlatIP``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.matching.index.base import load_arrays, save_arrays


class DenseIndex:
    """Exact top-k cosine search over ``(N, D) float32`` L2-normalised vectors with ids."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.vectors = np.zeros((0, dim), np.float32)
        self.ids = np.zeros((0,), np.int64)
        self._faiss = None

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append ``vectors`` ``(N, dim) float32`` (L2-normalised) with ``ids`` ``(N,) int64``."""
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        self.vectors = np.concatenate([self.vectors, vectors])
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64).reshape(-1)])
        self._faiss = None

    def remove(self, ids: list[int]) -> None:
        """Drop the vectors tagged with ``ids``."""
        keep = ~np.isin(self.ids, np.asarray(ids, np.int64))
        self.vectors, self.ids, self._faiss = self.vectors[keep], self.ids[keep], None

    def _index(self):
        if self._faiss is None:
            import faiss

            self._faiss = faiss.IndexFlatIP(self.dim)
            if len(self.vectors):
                self._faiss.add(self.vectors)
        return self._faiss

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """For each query row ``(Q, dim) float32``: ``[(id, cosine)]``, best first, at most k."""
        if not len(self.ids):
            return [[] for _ in range(len(queries))]
        q = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        sims, labels = self._index().search(q, min(k, len(self.ids)))
        return [[(int(self.ids[lab]), float(s)) for s, lab in zip(srow, lrow, strict=True)
                 if lab >= 0] for srow, lrow in zip(sims, labels, strict=True)]

    def save(self, path: Path, fingerprint: str) -> None:
        """Save atomically with the gallery ``fingerprint``."""
        save_arrays(path, fingerprint, vectors=self.vectors, ids=self.ids)

    @classmethod
    def load(cls, path: Path, fingerprint: str, dim: int) -> DenseIndex | None:
        """The saved index, or None when missing or stale."""
        arrays = load_arrays(path, fingerprint)
        if arrays is None:
            return None
        index = cls(dim)
        index.add(arrays["ids"], arrays["vectors"])
        return index
