"""Look inside the gallery: text search (CLIP) and near-duplicate groups."""

from __future__ import annotations

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


def dupes(ws: Workspace, collection: str, max_distance: int = 6) -> list[list[int]]:
    """Groups (size >= 2) of near-duplicate gallery ids inside ``collection``.

    Two images are linked when the identity pHash of one is within
    ``max_distance`` bits of any dihedral pHash of the other; groups are the
    connected components (union-find), largest first.

    Raises:
        NotFound: no such collection.
    """
    with ws.session() as s:
        hexes = repo.phashes(s, collection)
    if not hexes:
        raise NotFound(f"no collection named {collection!r} (or it is empty)")
    index = BinaryIndex(8)
    codes = {gid: np.frombuffer(bytes.fromhex(h), np.uint8).reshape(-1, 8)
             for gid, h in hexes.items()}
    ids = list(codes)
    index.add(np.repeat(ids, [len(c) for c in codes.values()]),
              np.concatenate(list(codes.values())))
    parent = {gid: gid for gid in ids}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for gid in ids:
        for other, _ in index.search(codes[gid][0], max_distance):
            if other != gid:
                parent[find(gid)] = find(other)
    groups: dict[int, list[int]] = {}
    for gid in ids:
        groups.setdefault(find(gid), []).append(gid)
    return sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True)
