"""Look inside the gallery: text search (CLIP) and near-duplicate groups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.errors import NotFound, StageUnavailable
from monitor.matching.index.binary import BinaryIndex
from monitor.services.workspace import Workspace
from monitor.store import gallery as repo


def search_text(ws: Workspace, text: str, k: int = 10) -> list[tuple[int, float]]:
    """Gallery ids ranked by CLIP cosine similarity to ``text``, best first.

    Raises:
        StageUnavailable: the CLIP model cannot be loaded here (reason and fix inside).
    """
    engine = ws.engine()
    if engine.clip is None:
        raise StageUnavailable("clip", "disabled in config.toml", "set [clip] enabled = true")
    status = engine.clip.status()
    if not status.available:
        raise StageUnavailable("clip", status.reason, status.fix)
    if engine.clip_index is None or not len(engine.clip_index):
        return []
    return engine.clip_index.search(engine.clip.encode_text([text]), k)[0]


@dataclass(frozen=True)
class Link:
    """Why two gallery images are near-duplicates: the pHash Hamming distance (bits of 64,
    nearest dihedral variant) and the SSCD cosine similarity (None without the stage)."""

    a: int
    b: int
    distance: int
    similarity: float | None


@dataclass(frozen=True)
class DupeGroup:
    """Gallery ids linked directly or through each other, with the links that join them."""

    ids: list[int]
    links: list[Link]


def dupes(ws: Workspace, collection: str, max_distance: int = 6,
          min_similarity: float = 0.85) -> list[DupeGroup]:
    """Groups (size >= 2) of near-duplicate gallery images inside ``collection``.

    Two images are linked when the identity pHash of one is within ``max_distance`` bits
    of any dihedral pHash of the other, or when their SSCD descriptors' cosine similarity
    is at least ``min_similarity`` (the same artwork at another size, crop or colour:
    measured on the demo gallery, such a pair at 0.96 and the closest unrelated pair at
    0.64). Groups are the connected components (union-find), largest first.

    Raises:
        NotFound: no such collection.
    """
    with ws.session() as s:
        hexes = repo.phashes(s, collection)
    if not hexes:
        raise NotFound(f"no collection named {collection!r} (or it is empty)")
    codes = {gid: np.frombuffer(bytes.fromhex(h), np.uint8).reshape(-1, 8)
             for gid, h in hexes.items()}
    ids = list(codes)
    index = BinaryIndex(8)
    index.add(np.repeat(ids, [len(c) for c in codes.values()]),
              np.concatenate(list(codes.values())))
    near = [(gid, other) for gid in ids for other, _ in index.search(codes[gid][0], max_distance)]
    pairs = {(min(a, b), max(a, b)) for a, b in near + _similar(ws, set(ids), min_similarity)}
    vectors = _descriptors(ws, ids)
    links = [Link(a, b, _hamming(codes[a], codes[b]), _cosine(vectors, a, b))
             for a, b in sorted(pairs) if a != b]
    return _components(ids, links)


SIMILAR_K = 10
"""SSCD neighbours looked at per image (a group larger than this still links through
its members)."""


def _similar(ws: Workspace, ids: set[int], min_similarity: float) -> list[tuple[int, int]]:
    """Pairs of ``ids`` whose SSCD cosine similarity is at least ``min_similarity``, from
    each image's :data:`SIMILAR_K` nearest neighbours in the descriptor index."""
    index = ws.engine().descriptor_index
    if index is None:
        return []
    held, vectors = index.vectors_of(sorted(ids))
    found = index.search(vectors, SIMILAR_K) if len(held) else []
    return [(int(g), other) for g, row in zip(held, found, strict=True)
            for other, sim in row if other in ids and other != g and sim >= min_similarity]


def _hamming(a: np.ndarray, b: np.ndarray) -> int:
    """Bits between ``a``'s identity pHash and the nearest of ``b``'s dihedral variants."""
    return int(np.unpackbits(np.bitwise_xor(b, a[0]), axis=1).sum(axis=1).min())


def _descriptors(ws: Workspace, ids: list[int]) -> dict[int, np.ndarray]:
    index = ws.engine().descriptor_index
    if index is None:
        return {}
    held, vectors = index.vectors_of(sorted(ids))
    return {int(g): v for g, v in zip(held, vectors, strict=True)}


def _cosine(vectors: dict[int, np.ndarray], a: int, b: int) -> float | None:
    if a in vectors and b in vectors:
        return float(vectors[a] @ vectors[b])
    return None


def _components(ids: list[int], links: list[Link]) -> list[DupeGroup]:
    parent = {gid: gid for gid in ids}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for lk in links:
        parent[find(lk.a)] = find(lk.b)
    groups: dict[int, list[int]] = {}
    for gid in ids:
        groups.setdefault(find(gid), []).append(gid)
    out = [DupeGroup(sorted(g), sorted((lk for lk in links if find(lk.a) == find(g[0])),
                                       key=lambda lk: (lk.a, lk.b)))
           for g in groups.values() if len(g) > 1]
    return sorted(out, key=lambda grp: len(grp.ids), reverse=True)
