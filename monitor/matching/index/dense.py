"""Inner-product index of L2-normalised float vectors (SSCD, CLIP): exact, then IVF.

Up to ``flat_max`` vectors the index is exact (FAISS ``IndexIDMap`` over ``IndexFlatIP``,
4·D + 8 bytes a vector). Above it, :meth:`DenseIndex.train` (called by :meth:`save`
when a flat index has outgrown ``flat_max``) trains an IVF index on the gallery's own
vectors: by default ``IVF{nlist},SQ8`` with the inner-product metric, D + 8 bytes a
vector (8-bit scalar quantisation of the residual to the coarse centroid) and
``nlist`` ≈ 4·√N lists (FAISS wiki, "Guidelines to choose an index": 4·√N to 16·√N).
Once IVF, ``add`` appends to the inverted lists and ``remove`` drops entries from them
(``remove_ids``); neither retrains.

Saved and memory-mapped as described in :mod:`~monitor.matching.index.faiss_io`: a
memory-mapped index is read-only, so the first ``add``/``remove`` on one reads it whole
first (transparent; costs one read of the file).
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

FLAT_MAX = 10_000
"""Vectors kept exact (flat). Measured (bench/index_recall.py data, 512-d, 1 thread, 2
busy cores), p50 / p99 of one query and of a batch of 5 (a candidate's whole, trimmed
and 3 region views): flat 0.55 / 0.79 and 2.7 / 3.3 ms at 10k; 1.6 / 2.1 and 7.9 /
12 ms at 20k; 4.1 / 8.0 and 24 / 42 ms at 50k. IVF stays near 1 ms at every size, so
past 10k exactness is no longer worth its time."""

SCAN_TARGET = 16_384
"""Vectors scanned per query when ``nprobe`` is automatic (None): nprobe =
SCAN_TARGET · nlist / N, at least 16, at most nlist, so a query costs ≈ 1 ms at any
size. Measured (bench/index_recall.py): at 1M vectors (4096 lists, nprobe 68) recall@10
0.9874 against 0.9879 at nprobe 256 (SQ8 limits it, see :data:`FACTORY`), p50 1.2 ms;
at 100k (1024 lists, nprobe 168) 0.989; at 10k-20k (256-512 lists) a fixed nprobe 64
gave 0.96-0.97, all lists 0.995."""

FACTORY = "IVF{nlist},SQ8"
"""Default FAISS ``index_factory`` string of the trained index (``{nlist}`` is filled in
from :func:`~.faiss_io.nlist_for`). Measured at 1M vectors (bench/index_recall.py):
SQ8 (512 B a vector) recall@10 0.987 on copy and 0.982 on unrelated queries (top-1 1.000
and 0.999), its quantisation being the limit; ``"IVF{nlist},SQfp16"`` (1 KB) reaches
0.9985 (nprobe 64, 1.3 ms p50). For ~10M vectors ``"IVF{nlist},PQ64"`` (64 B) fits memory at a
recall cost. Any factory string giving an ``IndexIVF`` is accepted."""

TRAIN_POINTS_PER_LIST = 64
"""Training sample per list (FAISS wiki: 30 to 256 per list). Measured at 100k: recall@10
within 0.0025 of 256 per list; k-means runs FAISS's IVF default of 10 iterations
(1M vectors: 159 s to train and fill, 1 thread)."""


def _ivf(index):
    """The ``IndexIVF`` inside ``index`` (raises ValueError when there is none)."""
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError as exc:
        raise ValueError(f"{type(index).__name__} is not an IVF index") from exc


class DenseIndex:
    """Top-k inner-product (cosine) search over ``(N, dim) float32`` L2-normalised vectors,
    each tagged with an ``int64`` gallery id; exact up to ``flat_max`` vectors, IVF above.

    Args:
        dim: vector width D (512 for SSCD).
        flat_max: vectors searched exactly; above it :meth:`save` trains IVF
            (:data:`FLAT_MAX`, measured).
        nprobe: lists visited per query once IVF; None: automatic (:data:`SCAN_TARGET`).
        factory: FAISS factory string of the trained index (default :data:`FACTORY`).
    """

    def __init__(self, dim: int, *, flat_max: int = FLAT_MAX, nprobe: int | None = None,
                 factory: str | None = None) -> None:
        self.dim, self.flat_max, self.factory = int(dim), int(flat_max), factory
        self._nprobe, self._kind = nprobe, "flat"
        self._faiss = None
        self._source: Path | None = None  # the data file while memory-mapped
        self._ids = IdSet()

    def _index(self):
        """The FAISS index (an empty flat one is made on first use)."""
        if self._faiss is None:
            import faiss

            flat = faiss.IndexFlatIP(self.dim)
            self._faiss = faiss.IndexIDMap(flat)
            self._faiss.own_fields = True
            flat.this.disown()
        return self._faiss

    def _writable(self):
        if self._source is not None:
            self._faiss, self._source = read_whole(self._faiss, self._source, False), None
        return self._index()

    def __len__(self) -> int:
        """Vectors held (one per gallery id as the engine adds them)."""
        return int(self._index().ntotal)

    @property
    def kind(self) -> str:
        """``"flat"`` or the factory string of the trained index (e.g. ``"IVF4096,SQ8"``)."""
        return self._kind

    @property
    def nprobe(self) -> int | None:
        """Lists visited per query (None while flat); settable, None for automatic."""
        if self._kind == "flat":
            return None
        nlist = _ivf(self._index()).nlist
        if self._nprobe is not None:
            return min(self._nprobe, nlist)
        return min(nlist, max(16, -(-SCAN_TARGET * nlist // max(len(self), 1))))

    @nprobe.setter
    def nprobe(self, value: int | None) -> None:
        self._nprobe = None if value is None else int(value)

    @property
    def memory_bytes(self) -> int:
        """Estimated bytes held, in RAM or mapped: codes, ids and coarse centroids."""
        n = len(self)
        if self._kind == "flat":
            return n * (4 * self.dim + 8) + 8 * len(self._ids)
        ivf = _ivf(self._index())
        return n * (ivf.code_size + 8) + 4 * ivf.nlist * self.dim + 8 * len(self._ids)

    def ids(self) -> np.ndarray:
        """``(M,) int64`` distinct gallery ids held, ascending (read-only)."""
        return self._ids.array()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append ``vectors`` ``(N, dim) float32`` (L2-normalised) with ``ids`` ``(N,) int64``.

        Raises:
            ValueError: width other than ``dim``, or ``len(ids) != N``.
        """
        x = rows(vectors, self.dim, np.float32)
        ids = np.ascontiguousarray(ids, np.int64).reshape(-1)
        if len(ids) != len(x):
            raise ValueError(f"{len(ids)} ids for {len(x)} vectors")
        if len(x):
            self._writable().add_with_ids(x, ids)
            self._ids.add(ids)

    def remove(self, ids: list[int] | np.ndarray) -> int:
        """Drop every vector tagged with one of ``ids`` (unknown ids are ignored); returns
        how many were removed. IVF lists are edited in place (no retraining)."""
        ids = np.unique(np.asarray(ids, np.int64).reshape(-1))
        ids = ids[self._ids.contains(ids)]
        if not len(ids):
            return 0
        removed = self._writable().remove_ids(ids)
        self._ids.remove(ids)
        return int(removed)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """For each row of ``queries`` ``(Q, dim) float32``: ``[(id, inner product)]``, best
        first, at most ``k`` (fewer when the index or the visited lists hold fewer).

        Raises:
            ValueError: query width other than ``dim``.
        """
        q = rows(queries, self.dim, np.float32)
        n = len(self)
        if not n or k <= 0:
            return [[] for _ in range(len(q))]
        if self._kind != "flat":
            _ivf(self._index()).nprobe = self.nprobe
        sims, labels = self._index().search(q, min(int(k), n))
        return [[(int(lab), float(s)) for s, lab in zip(srow, lrow, strict=True) if lab >= 0]
                for srow, lrow in zip(sims, labels, strict=True)]

    def train(self) -> float:
        """Replace the flat index by an IVF one trained on the vectors held (k-means on a
        sample of :data:`TRAIN_POINTS_PER_LIST` per list, then every vector added);
        returns the seconds it took. A no-op (0.0) once IVF. Logs nothing.

        Raises:
            ValueError: fewer than :data:`MIN_POINTS_PER_LIST` vectors, or a factory
                string that does not give an IVF index.
        """
        if self._kind != "flat":
            return 0.0
        import faiss

        t0, flat, n = time.perf_counter(), self._index(), len(self)
        spec = (self.factory or FACTORY).format(nlist=nlist_for(n))
        index = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
        ivf = _ivf(index)
        xb = faiss.rev_swig_ptr(faiss.downcast_index(flat.index).get_xb(), n * self.dim)
        xb = xb.reshape(n, self.dim)
        sample = train_rows(n, ivf.nlist, TRAIN_POINTS_PER_LIST)
        index.train(xb if sample is None else np.ascontiguousarray(xb[sample]))
        index.add_with_ids(xb, faiss.vector_to_array(flat.id_map))
        self._faiss, self._kind, self._source = index, spec, None
        return time.perf_counter() - t0

    def vectors_of(self, ids: list[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found ids (M,) int64 ascending, vectors (M, dim) float32)`` of those of ``ids``
        held: exact when flat, decoded (approximate) once compressed. O(N) scan."""
        import faiss
        from faiss.contrib.inspect_tools import get_invlist

        want, ix = np.asarray(ids, np.int64).reshape(-1), self._index()
        if self._kind == "flat":
            own = faiss.vector_to_array(ix.id_map)
            sel = np.flatnonzero(np.isin(own, want))
            xb = faiss.rev_swig_ptr(faiss.downcast_index(ix.index).get_xb(), len(own) * self.dim)
            found, vecs = own[sel], xb.reshape(-1, self.dim)[sel].copy()
        else:
            ivf, found_l, vecs_l = _ivf(ix), [], []
            invlists, ccs = ivf.invlists, ivf.coarse_code_size()
            for lst in range(ivf.nlist):
                if not invlists.list_size(lst):
                    continue
                lids, codes = get_invlist(invlists, lst)
                keep = np.isin(lids, want)
                if keep.any():
                    prefix = np.frombuffer(lst.to_bytes(ccs, "little"), np.uint8)
                    codes = np.hstack([np.tile(prefix, (int(keep.sum()), 1)), codes[keep]])
                    found_l.append(lids[keep])
                    vecs_l.append(ix.sa_decode(np.ascontiguousarray(codes)))
            found = np.concatenate(found_l) if found_l else np.zeros(0, np.int64)
            vecs = np.concatenate(vecs_l) if vecs_l else np.zeros((0, self.dim), np.float32)
        order = np.argsort(found, kind="stable")
        return found[order], vecs[order]

    @property
    def vectors(self) -> np.ndarray:
        """``(N, dim) float32`` every vector, rows in ascending id order (see
        :meth:`vectors_of`; an O(N) copy kept for callers of the former flat index)."""
        return self.vectors_of(self._ids.array())[1]

    def save(self, path: Path, fingerprint: str) -> None:
        """Save atomically with the gallery ``fingerprint`` (see the module docstring);
        trains IVF first when a flat index holds more than ``flat_max`` vectors."""
        if self._kind == "flat" and len(self) > self.flat_max:
            self.train()
        save_faiss(path, fingerprint, self._index(), False, kind=np.array(self._kind),
                   dim=np.array(self.dim), ids=self._ids.array())

    @classmethod
    def load(cls, path: Path, fingerprint: str, dim: int | None, mmap: bool = True, *,
             flat_max: int = FLAT_MAX, nprobe: int | None = None,
             factory: str | None = None) -> DenseIndex | None:
        """The saved index, or None when missing, stale, unreadable or not ``dim`` wide
        (``dim`` None accepts any width). ``mmap``: map the vectors instead of reading
        them (read-only until the first change, see the module docstring)."""
        opened = open_faiss(path, fingerprint, False, mmap)
        if opened is None:
            return None
        ix, meta, data = opened
        if "kind" not in meta or "ids" not in meta or (dim is not None and ix.d != dim):
            return None
        out = cls(ix.d, flat_max=flat_max, nprobe=nprobe, factory=factory)
        out._faiss, out._kind, out._ids = ix, str(meta["kind"]), IdSet(meta["ids"])
        out._source = data if mmap else None
        return out

