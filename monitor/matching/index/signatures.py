"""Fixed-width signatures per gallery image, looked up by id (no search).

Holds the structure signatures of :mod:`monitor.matching.stages.structure`:
``(N, D) float16`` rows with their gallery ids, saved beside the local index as one
npz with the engine's fingerprint (:mod:`monitor.matching.index.base`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.matching.index.base import load_arrays, save_arrays


class SignatureStore:
    """``add/get/remove/save/load`` over id-tagged rows ``(D,) float16``."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._rows: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def ids(self) -> list[int]:
        """Gallery ids held, ascending."""
        return sorted(self._rows)

    def add(self, gallery_id: int, row: np.ndarray) -> None:
        """Store ``row`` ``(dim,)`` for ``gallery_id`` (replacing any earlier one).

        Raises:
            ValueError: ``row`` is not ``dim`` wide.
        """
        row = np.asarray(row, np.float16).reshape(-1)
        if row.shape[0] != self.dim:
            raise ValueError(f"signature of width {row.shape[0]}, expected {self.dim}")
        self._rows[int(gallery_id)] = row

    def get(self, gallery_id: int) -> np.ndarray | None:
        """The row of ``gallery_id``, or None."""
        return self._rows.get(int(gallery_id))

    def remove(self, ids: list[int]) -> None:
        """Drop the rows of ``ids`` (unknown ids are ignored)."""
        for gid in ids:
            self._rows.pop(int(gid), None)

    def save(self, path: Path, fingerprint: str) -> None:
        """Save atomically with ``fingerprint``."""
        ids = self.ids()
        rows = (np.stack([self._rows[g] for g in ids]) if ids
                else np.zeros((0, self.dim), np.float16))
        save_arrays(path, fingerprint, ids=np.array(ids, np.int64), rows=rows)

    @classmethod
    def load(cls, path: Path, fingerprint: str, dim: int) -> SignatureStore | None:
        """The saved store, or None when missing, stale or of another width."""
        arrays = load_arrays(path, fingerprint)
        if arrays is None or arrays["rows"].reshape(-1, dim).shape[1] != dim:
            return None
        store = cls(dim)
        for gid, row in zip(arrays["ids"], arrays["rows"].reshape(-1, dim), strict=True):
            store._rows[int(gid)] = row
        return store
