"""What the ``local`` stage verifies against: gallery features on disk, plus an optional vote.

Verification needs, per shortlisted gallery image, its keypoints, descriptors and
thumbnails (:class:`~monitor.matching.stages.local_features.Features`). Those live in a
:class:`~monitor.matching.index.features.FeatureStore` (memory-mapped, read per image), so
memory does not grow with the gallery. :class:`LocalIndex` puts that store together
with the optional **keypoint vote** (:class:`VoteIndex`): every gallery descriptor in
one FAISS index, each candidate descriptor voting for the images its neighbours belong
to. The vote finds copies no global signal retrieves, but its index costs memory per
descriptor, so the engine keeps it only for galleries up to ``local.vote_max_gallery``.

FAISS index choice for the vote, measured on 2 cores with 364 query descriptors against
the 56,289 RootSIFT descriptors of 300 corpus gallery images: ``IndexFlatL2`` 513 ms,
``IndexHNSWFlat`` M=16 28 ms (efSearch 32, 94 % of the exact 8-NN), ``IndexHNSWSQ``
with ``QT_8bit_direct`` (the uint8 RootSIFT bytes as-is, 128 B a vector) 20 ms at the
same recall, built in 4 s. So: HNSW (Malkov & Yashunin 2018) over 8-bit codes; new
gallery images are appended to the graph; removals rebuild it from the codes it holds
(``QT_8bit_direct`` reconstructs the bytes exactly). ORB (binary) descriptors use
``IndexBinaryHNSW``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.matching.index.base import load_arrays, save_arrays
from monitor.matching.index.features import FeatureStore, GalleryRecord
from monitor.matching.stages.local_features import Features

HNSW_M, HNSW_EF_SEARCH, HNSW_EF_CONSTRUCTION = 16, 32, 40
"""HNSW links per node, search beam and build beam (FAISS parameter names)."""


class VoteIndex:
    """Every gallery keypoint descriptor in one HNSW graph, tagged with its gallery id.

    Attributes:
        dim: descriptor width in bytes (128 RootSIFT, 32 ORB).
    """

    def __init__(self, dim: int = 128) -> None:
        self.dim = dim
        self._owner = np.zeros((0,), np.int64)
        self._faiss = None

    def __len__(self) -> int:
        return len(np.unique(self._owner))

    @property
    def descriptor_count(self) -> int:
        """Number of gallery descriptors held."""
        return len(self._owner)

    def ids(self) -> np.ndarray:
        """``(G,) int64`` gallery ids with at least one descriptor, ascending."""
        return np.unique(self._owner)

    def _index(self):
        if self._faiss is None:
            self._faiss = _build(np.zeros((0, self.dim), np.uint8))
        return self._faiss

    def add(self, gallery_id: int, descriptors: np.ndarray) -> None:
        """Append ``descriptors`` ``(N, dim) uint8`` of ``gallery_id`` to the graph."""
        if not len(descriptors):
            return
        if descriptors.shape[1] != self.dim:
            self.dim, self._faiss, self._owner = descriptors.shape[1], None, self._owner[:0]
        self._index().add(_data(descriptors))
        self._owner = np.concatenate([self._owner, np.full(len(descriptors), int(gallery_id),
                                                           np.int64)])

    def remove(self, ids: list[int]) -> None:
        """Drop the descriptors of ``ids``: the graph is rebuilt from the codes it keeps."""
        drop = np.isin(self._owner, np.asarray(list(ids), np.int64))
        if not drop.any():
            return
        kept = self._codes()[~drop]
        self._owner = self._owner[~drop]
        self._faiss = _build(kept)

    def _codes(self) -> np.ndarray:
        """``(M, dim) uint8`` every descriptor held, in order (exact: 8-bit direct codes and
        binary codes reconstruct to the bytes added)."""
        if not len(self._owner):
            return np.zeros((0, self.dim), np.uint8)
        index = self._index()
        return np.rint(index.reconstruct_n(0, index.ntotal)).astype(np.uint8)

    def search(self, query: Features, top: int, k: int = 8) -> list[tuple[int, float]]:
        """Gallery ids ranked by votes of ``query``'s descriptors, best first (``top`` at most).

        Each query descriptor looks up its ``k`` nearest gallery descriptors and gives
        each image among them one vote weighted ``1 - d / d_k`` (``d_k``: distance to
        the ``k``-th neighbour; Jégou et al. 2010 style soft assignment), so
        descriptors common to many images vote little.
        """
        if not len(query) or not len(self._owner) or query.descriptors.shape[1] != self.dim:
            return []
        votes = self.votes(query, k)
        order = np.argsort(-votes[:, 1], kind="stable")[:top]
        return [(int(votes[i, 0]), float(votes[i, 1])) for i in order if votes[i, 1] > 0]

    def votes(self, query: Features, k: int = 8) -> np.ndarray:
        """``(G, 2) float64`` rows of (gallery id, vote) for every image that got a vote."""
        q = np.ascontiguousarray(query.descriptors)
        k = min(k, len(self._owner))
        dist, lab = self._index().search(_data(q), k)
        dist = np.sqrt(np.maximum(dist.astype(np.float64), 0))
        weight = 1.0 - dist / np.maximum(dist[:, -1:], 1e-9)
        owner = np.where(lab >= 0, self._owner[np.maximum(lab, 0)], -1)
        rows = np.repeat(np.arange(len(q)), k)  # one vote per (query descriptor, image)
        flat_owner, flat_w = owner.reshape(-1), weight.reshape(-1)
        key = rows * (1 << 40) + np.where(flat_owner < 0, (1 << 40) - 1, flat_owner)
        _, first = np.unique(key, return_index=True)
        first = first[flat_owner[first] >= 0]
        gids, inv = np.unique(flat_owner[first], return_inverse=True)
        score = np.bincount(inv, weights=flat_w[first], minlength=len(gids))
        return np.stack([gids.astype(np.float64), score], axis=1)

    def save(self, path: Path, fingerprint: str) -> None:
        """Save the graph and owners atomically (npz via :func:`save_arrays`)."""
        import faiss

        graph = self._index()
        blob = (faiss.serialize_index_binary(graph) if isinstance(graph, faiss.IndexBinary)
                else faiss.serialize_index(graph))
        save_arrays(path, fingerprint, faiss=np.asarray(blob, np.uint8), owner=self._owner,
                    dim=np.array(self.dim))

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> VoteIndex | None:
        """The saved vote index, or None when missing, stale or unreadable."""
        a = load_arrays(path, fingerprint)
        if a is None or "owner" not in a:
            return None
        index = cls(int(a["dim"]))
        index._faiss, index._owner = _restore(a["faiss"], index.dim), a["owner"]
        return index


class LocalIndex:
    """The gallery as the local stage sees it: a feature store and, optionally, the vote.

    Attributes:
        store: per-image :class:`GalleryRecord` (features and structure signature).
        vote: the keypoint :class:`VoteIndex`, or None (shortlists come from retrieval only).
    """

    def __init__(self, store: FeatureStore | None = None, vote: VoteIndex | None | bool = True
                 ) -> None:
        self.store = store if store is not None else FeatureStore()
        self.vote = VoteIndex() if vote is True else (vote or None)

    def __len__(self) -> int:
        return len(self.store)

    def ids(self) -> list[int]:
        """Gallery ids held, ascending."""
        return self.store.ids()

    def add(self, gallery_id: int, features: Features | None,
            signature: np.ndarray | None = None) -> None:
        """Add (or replace) the record of ``gallery_id``: its gallery view ``features`` (None
        without the local stage) and its structure ``signature`` ``(D,) float16`` (or None)."""
        if gallery_id in self.store:
            self.remove([gallery_id])
        self.store.add(int(gallery_id), GalleryRecord(features, signature))
        if self.vote is not None and features is not None:
            self.vote.add(int(gallery_id), features.descriptors)

    def start_vote(self) -> None:
        """Keep a keypoint vote from now on, built from the stored descriptors (no decode)."""
        if self.vote is None:
            self.vote = VoteIndex()
            self._sync_vote()

    def refresh(self) -> bool:
        """Read the records another process saved to the shared store since
        (:meth:`FeatureStore.refresh`), the vote brought in line; True when re-read."""
        if not self.store.refresh():
            return False
        if self.vote is not None:
            self._sync_vote()
        return True

    def _sync_vote(self) -> None:
        """Bring the vote in line with the store: votes of ids no longer stored removed,
        stored ids without votes added from their stored descriptors."""
        held, voted = set(self.store.ids()), set(self.vote.ids().tolist())
        self.vote.remove(sorted(voted - held))
        for gid in sorted(held - voted):
            for f in self.store.features(gid):
                self.vote.add(gid, f.descriptors)

    def remove(self, ids: list[int]) -> None:
        """Drop the records (and votes) of ``ids``; unknown ids are ignored."""
        self.store.remove(list(ids))
        if self.vote is not None:
            self.vote.remove(list(ids))

    def features(self, gallery_id: int) -> list[Features]:
        """The views of ``gallery_id`` to verify a candidate against (empty if unknown)."""
        return self.store.features(int(gallery_id))

    def signature(self, gallery_id: int) -> np.ndarray | None:
        """The structure signature of ``gallery_id``, or None."""
        return self.store.signature(int(gallery_id))

    def original_size(self, gallery_id: int) -> tuple[int, int] | None:
        """``(width, height)`` in pixels of gallery image ``gallery_id``'s original, or None."""
        return self.store.original_size(int(gallery_id))

    @property
    def descriptor_count(self) -> int:
        """Gallery descriptors in the vote index (0 without one)."""
        return self.vote.descriptor_count if self.vote is not None else 0

    def search(self, query: Features, top: int, k: int = 8) -> list[tuple[int, float]]:
        """The vote's ranking (:meth:`VoteIndex.search`), or [] without a vote index."""
        return self.vote.search(query, top, k) if self.vote is not None else []

    def save(self, folder: Path, fingerprint: str) -> None:
        """Save the store's pending records and the vote index under ``folder``."""
        if self.store.folder is None:  # built in memory (a fresh gallery): now on disk
            disk = FeatureStore(Path(folder) / "features", fingerprint)
            for gid in self.store.ids():
                disk.add(gid, self.store.get(gid))
            self.store = disk
        self.store.save()
        vote_path = Path(folder) / "vote.npz"
        if self.vote is not None:
            self.vote.save(vote_path, fingerprint)
        else:
            vote_path.unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: Path, fingerprint: str, vote: bool = True) -> LocalIndex | None:
        """The saved index under ``folder`` (its vote too when ``vote``, rebuilt from the
        stored descriptors when its file is missing), or None when the store is missing
        or stale (caller rebuilds)."""
        store = FeatureStore.open(Path(folder) / "features", fingerprint)
        if store.reset:
            return None
        index = cls(store, (VoteIndex.load(Path(folder) / "vote.npz", fingerprint)
                            or VoteIndex()) if vote else None)
        if index.vote is not None:  # missing or behind the store: completed from it
            index._sync_vote()
        return index


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
