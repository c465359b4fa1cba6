"""Score normalisation of descriptor similarities against a background set.

A raw SSCD cosine means different things for different queries: a plain drawing is
close to many unrelated drawings, a busy photo to few. Pizzi et al. (2022, SSCD,
section 3.4, after the ISC21 baseline of Douze et al. 2021) subtract from each
similarity ``beta`` times the query's similarity to its k-th nearest neighbour in a
*background* set of unrelated images::

    normalised(q, r) = cos(q, r) - beta * cos_k(q, background)

so that one threshold means the same across queries and galleries (SSCD on DISC21:
µAP 0.615 raw, 0.725 normalised). The background must hold no copies of the gallery;
the shipped one (``monitor/defaults/background-<model>.npy``) embeds images of Debian
packages that neither the test corpus nor the benchmark's distractors use
(``bench/background.sh``), and ``monitor background build DIR`` makes one from a
user's own unrelated images.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from monitor.errors import ModelLoadFailure

SHIPPED = Path(__file__).resolve().parent.parent / "defaults"
"""Folder of the shipped background files, ``background-<model>.npy``."""


def shipped_path(model: str) -> Path:
    """Where the shipped background of a built-in model lives (it may be absent)."""
    return SHIPPED / f"background-{model}.npy"


class Background:
    """Descriptors of unrelated images and the k-th-neighbour similarity of a query.

    Attributes:
        vectors: ``(M, D) float32``, L2-normalised.
        k: which neighbour's similarity is subtracted (1 = the nearest).
        beta: its weight.
        source: the file it came from (for ``doctor``).
    """

    def __init__(self, vectors: np.ndarray, k: int = 1, beta: float = 1.0,
                 source: str = "") -> None:
        self.vectors = np.ascontiguousarray(vectors, np.float32)
        self.k, self.beta, self.source = k, beta, source
        self._index = None

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def fingerprint(self) -> str:
        """Identifies the set and its parameters (a digest of the vectors)."""
        digest = hashlib.sha256(self.vectors.tobytes()).hexdigest()[:12]
        return f"bg:{len(self)}:{digest}:k{self.k}:b{self.beta:g}"

    @classmethod
    def load(cls, path: Path, dim: int, k: int = 1, beta: float = 1.0) -> Background:
        """Read a ``.npy`` of ``(M, dim)`` float16 or float32 descriptors.

        Raises:
            ModelLoadFailure: missing, unreadable, of another width, or fewer than k rows.
        """
        fix = ("set descriptor.background to a file from `monitor background build DIR`, "
               "or to `none`")
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelLoadFailure(f"cannot read background {path}: {exc}", fix) from exc
        if vectors.ndim != 2 or vectors.shape[1] != dim or len(vectors) < k:
            raise ModelLoadFailure(f"background {path} holds {vectors.shape}, expected "
                                   f"(M >= {k}, {dim})", fix)
        vectors = vectors.astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return cls(vectors, k, beta, str(path))

    def kth(self, queries: np.ndarray) -> np.ndarray:
        """Similarity of each query ``(Q, D) float32`` to its k-th nearest background
        descriptor, ``(Q,) float32`` (exact FAISS inner-product search)."""
        if self._index is None:
            import faiss

            self._index = faiss.IndexFlatIP(self.vectors.shape[1])
            self._index.add(self.vectors)
        sims, _ = self._index.search(np.ascontiguousarray(queries, np.float32), self.k)
        return sims[:, self.k - 1]

    def normalise(self, sims: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """``sims`` ``(Q, K)`` raw cosines of each query's neighbours, normalised:
        ``sims - beta * kth(queries)[:, None]``."""
        return sims - self.beta * self.kth(queries)[:, None]


def save(path: Path, vectors: np.ndarray) -> None:
    """Write descriptors as a float16 ``.npy`` (half the size; cosines move < 1e-3).

    Raises:
        OSError: the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        np.save(fh, np.asarray(vectors, np.float16), allow_pickle=False)
    tmp.replace(path)
