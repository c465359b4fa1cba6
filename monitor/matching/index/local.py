"""Descriptor index of the ``local`` stage: gallery keypoints, FAISS k-NN and voting.

Every gallery image contributes one view (its :class:`Features`); mirrored copies
are handled on the candidate side (see :mod:`monitor.matching.stages.local_features`).
All descriptors go into one FAISS index; a candidate's descriptors each fetch
their ``k`` nearest gallery descriptors and vote for the images those belong to.

FAISS index choice, measured on 2 cores with 364 query descriptors against the
56,289 RootSIFT descriptors of 300 corpus gallery images: ``IndexFlatL2`` 513 ms
(FAISS's exact search is slow for this query batch), ``IndexHNSWFlat`` M=16
28 ms (efSearch 32, 94 % of the exact 8-NN), ``IndexHNSWSQ`` with
``QT_8bit_direct`` (the uint8 RootSIFT bytes as-is, 128 B a vector) 20 ms at the
same recall, built in 4 s. At 8× the descriptors (≈ 2,400 images) search stays at
32 ms. So: HNSW (Malkov & Yashunin 2018) over 8-bit codes, always; new gallery
images are appended to the graph, removals rebuild it, and the graph is saved
with the index so loading does not rebuild. ORB (binary) descriptors use
``IndexBinaryHNSW``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.matching.index.base import load_arrays, save_arrays
from monitor.matching.stages.local_features import Features

HNSW_M, HNSW_EF_SEARCH, HNSW_EF_CONSTRUCTION = 16, 32, 40
"""HNSW links per node, search beam and build beam (FAISS parameter names)."""


class LocalIndex:
    """Gallery features keyed by gallery id, with lazy FAISS search over all descriptors."""

    def __init__(self) -> None:
        self._views: dict[int, Features] = {}
        self._owner = np.zeros((0,), np.int64)
        self._faiss = None

    def __len__(self) -> int:
        return len(self._views)

    def add(self, gallery_id: int, features: Features) -> None:
        """Add (or replace) the view of ``gallery_id``; the FAISS index is rebuilt lazily."""
        gid = int(gallery_id)
        if gid in self._views:
            self._faiss = None
        self._views[gid] = features
        if self._faiss is not None and len(features):
            self._faiss.add(_data(features.descriptors))
            self._owner = np.concatenate([self._owner, np.full(len(features), gid, np.int64)])

    def remove(self, ids: list[int]) -> None:
        """Drop the views of ``ids`` (unknown ids are ignored)."""
        for gid in ids:
            if self._views.pop(int(gid), None) is not None:
                self._faiss = None

    def ids(self) -> list[int]:
        """Gallery ids held, ascending."""
        return sorted(self._views)

    def features(self, gallery_id: int) -> list[Features]:
        """The views of ``gallery_id`` to verify a candidate against (empty if unknown)."""
        view = self._views.get(int(gallery_id))
        return [view] if view is not None else []

    def original_size(self, gallery_id: int) -> tuple[int, int] | None:
        """``(width, height)`` in pixels of gallery image ``gallery_id``'s original, or None
        when unknown (not held, or a view built without it)."""
        view = self._views.get(int(gallery_id))
        return view.original if view is not None else None

    @property
    def descriptor_count(self) -> int:
        """Number of gallery descriptors in the index."""
        return sum(len(f) for f in self._views.values())

    def _stacked(self) -> tuple[np.ndarray, np.ndarray]:
        ids = sorted(self._views)
        desc = [self._views[i].descriptors for i in ids if len(self._views[i])]
        owner = [np.full(len(self._views[i]), i, np.int64) for i in ids if len(self._views[i])]
        if not desc:
            return np.zeros((0, 128), np.uint8), np.zeros((0,), np.int64)
        return np.ascontiguousarray(np.concatenate(desc)), np.concatenate(owner)

    def _index(self):
        if self._faiss is None:
            desc, self._owner = self._stacked()
            self._faiss = _build(desc)
        return self._faiss

    def search(self, query: Features, top: int, k: int = 8) -> list[tuple[int, float]]:
        """Gallery ids ranked by votes of ``query``'s descriptors, best first (``top`` at most).

        Each query descriptor looks up its ``k`` nearest gallery descriptors and gives
        each image among them one vote weighted ``1 - d / d_k`` (``d_k``: distance to
        the ``k``-th neighbour; Jégou et al. 2010 style soft assignment), so
        descriptors common to many images vote little.
        """
        if not self._views or not len(query) or not self.descriptor_count:
            return []  # e.g. a gallery of flat images without a single keypoint
        votes = self.votes(query, k)
        order = np.argsort(-votes[:, 1], kind="stable")[:top]
        return [(int(votes[i, 0]), float(votes[i, 1])) for i in order if votes[i, 1] > 0]

    def votes(self, query: Features, k: int = 8) -> np.ndarray:
        """``(G, 2) float64`` rows of (gallery id, vote) for every image that got a vote."""
        index = self._index()
        q = np.ascontiguousarray(query.descriptors)
        k = min(k, len(self._owner))
        dist, lab = index.search(_data(q), k)
        dist = np.sqrt(np.maximum(dist.astype(np.float64), 0))
        weight = 1.0 - dist / np.maximum(dist[:, -1:], 1e-9)
        owner = np.where(lab >= 0, self._owner[np.maximum(lab, 0)], -1)
        # one vote per (query descriptor, image): the nearest neighbour of that image
        rows = np.repeat(np.arange(len(q)), k)
        flat_owner, flat_w = owner.reshape(-1), weight.reshape(-1)
        key = rows * (1 << 40) + np.where(flat_owner < 0, (1 << 40) - 1, flat_owner)
        _, first = np.unique(key, return_index=True)
        first = first[flat_owner[first] >= 0]
        gids, inv = np.unique(flat_owner[first], return_inverse=True)
        score = np.bincount(inv, weights=flat_w[first], minlength=len(gids))
        return np.stack([gids.astype(np.float64), score], axis=1)

    def save(self, path: Path, fingerprint: str) -> None:
        """Save atomically (npz via :func:`save_arrays`), the FAISS graph included."""
        import faiss

        graph = self._index()
        blob = (faiss.serialize_index_binary(graph) if isinstance(graph, faiss.IndexBinary)
                else faiss.serialize_index(graph))
        ids = sorted(self._views)
        views = [self._views[i] for i in ids]
        dim = views[0].descriptors.shape[1] if views else 128
        save_arrays(
            path, fingerprint,
            ids=np.array(ids, np.int64),
            counts=np.array([len(v) for v in views], np.int64),
            sizes=np.array([v.size for v in views], np.int64).reshape(-1, 2),
            scales=np.array([v.scale for v in views], np.float64),
            offsets=np.array([v.offset for v in views], np.float64).reshape(-1, 2),
            originals=np.array([v.original or (0, 0) for v in views], np.int64).reshape(-1, 2),
            keypoints=_cat([v.keypoints for v in views], (0, 2), np.float32),
            descriptors=_cat([v.descriptors for v in views], (0, dim), np.uint8),
            thumb_shapes=np.array([_shape(v.image) for v in views], np.int64).reshape(-1, 2),
            thumbs=_cat([v.image.reshape(-1) for v in views if v.image is not None], (0,),
                        np.uint8) if views else np.zeros(0, np.uint8),
            colour_shapes=np.array([_shape(v.colour)[:2] for v in views],
                                   np.int64).reshape(-1, 2),
            colours=_cat([v.colour.reshape(-1) for v in views if v.colour is not None], (0,),
                         np.uint8) if views else np.zeros(0, np.uint8),
            faiss=np.asarray(blob, np.uint8), owner=self._owner,
        )

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> LocalIndex | None:
        """The saved index, or None when missing, stale or unreadable (caller rebuilds).

        A file without the views' ``offsets`` and ``originals`` (saved before overlaps were
        measured, :mod:`monitor.matching.overlap`) is stale too.
        """
        a = load_arrays(path, fingerprint)
        if a is None or not {"offsets", "originals"} <= set(a):
            return None
        index = cls()
        ends = np.cumsum(a["counts"])
        thumbs = _unpack(a["thumbs"], a["thumb_shapes"], ())
        colours = _unpack(a["colours"], a["colour_shapes"], (3,))
        for i, gid in enumerate(a["ids"]):
            lo, hi = int(ends[i] - a["counts"][i]), int(ends[i])
            w, h = (int(v) for v in a["sizes"][i])
            ow, oh = (int(v) for v in a["originals"][i])
            index.add(int(gid), Features(a["keypoints"][lo:hi], a["descriptors"][lo:hi],
                                         (w, h), float(a["scales"][i]),
                                         offset=tuple(float(v) for v in a["offsets"][i]),
                                         image=thumbs[i], colour=colours[i],
                                         original=(ow, oh) if ow and oh else None))
        index._faiss, index._owner = _restore(a["faiss"], a["descriptors"].shape[1]), a["owner"]
        return index


def _shape(image: np.ndarray | None) -> tuple[int, ...]:
    return (0, 0) if image is None else image.shape


def _unpack(flat: np.ndarray, shapes: np.ndarray, tail: tuple[int, ...]
            ) -> list[np.ndarray | None]:
    """Images of ``shapes`` ``(N, 2)`` (rows, columns; 0 = none) × ``tail`` cut from
    ``flat``, in order."""
    per = int(np.prod(tail)) if tail else 1
    ends = np.cumsum(shapes[:, 0] * shapes[:, 1] * per)
    return [flat[e - h * w * per:e].reshape(int(h), int(w), *tail) if h else None
            for e, (h, w) in zip(ends, shapes, strict=True)]


def _cat(arrays: list[np.ndarray], empty: tuple[int, ...], dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(empty, dtype)


def _data(desc: np.ndarray) -> np.ndarray:
    """What FAISS takes: packed bits as-is (ORB, 32 B), else float32."""
    return np.ascontiguousarray(desc if desc.shape[1] == 32 else desc.astype(np.float32))


def _restore(blob: np.ndarray, dim: int):
    import faiss

    if dim == 32:
        return faiss.deserialize_index_binary(blob)
    index = faiss.deserialize_index(blob)
    index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


def _build(desc: np.ndarray):
    """An HNSW FAISS index over ``(M, D) uint8`` descriptors (binary when ``D == 32``)."""
    import faiss

    dim = desc.shape[1]
    if dim == 32:
        index = faiss.IndexBinaryHNSW(256, HNSW_M)
    else:
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit_direct, HNSW_M)
        index.train(np.zeros((1, dim), np.float32))
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    if len(desc):
        index.add(_data(desc))
    return index
