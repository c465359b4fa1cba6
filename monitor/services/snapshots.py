"""Index snapshots in the blob store: a new machine starts from one, not from nothing.

A process that keeps the index folder current (``monitor serve``, the api role) publishes
it to the blob store (``storage.blob_url``) after gallery changes, at most every
:data:`PUBLISH_EVERY` seconds, and ``monitor gallery snapshot`` does it on demand:

    indices/snap-<gallery version>-<random>/…   every file of ``data/indices``
    indices/LATEST                               {"version", "prefix", "files", "created"}

The copy is taken under the index folder's lock (:func:`monitor.matching.persist.locked`,
which every save holds too), so it is never half-saved. A process whose own index folder is empty (a
new worker on a new machine) downloads the latest snapshot (:func:`restore`), then its
start-up reconcile (:func:`monitor.matching.persist.load`) applies only the gallery
changes made since. With the default blob store (the data folder itself) the index
folder is already shared, and nothing is copied.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

from monitor.errors import BlobNotFound
from monitor.matching import persist
from monitor.services.workspace import Workspace
from monitor.store import coordination
from monitor.store.blobs import LocalBlobs

log = logging.getLogger("monitor.snapshots")

LATEST = "indices/LATEST"
"""Blob key of the pointer to the newest snapshot."""

PUBLISH_EVERY = 300.0
"""Seconds between automatic publications of a changing gallery's indices."""

KEEP = 2
"""Snapshots kept in the blob store (the newest ones); older ones are deleted."""


@dataclass(frozen=True)
class Snapshot:
    """One published snapshot.

    Attributes:
        version: the gallery version (:mod:`monitor.store.coordination`) read before it.
        prefix: its blob-key folder.
        files: file names relative to the index folder.
        bytes: their total size.
        seconds: wall time to copy them.
    """

    version: int
    prefix: str
    files: list[str]
    bytes: int
    seconds: float


def shared(ws: Workspace) -> bool:
    """True when the blob store is a local folder: the index folder is shared already."""
    return isinstance(ws.blobs, LocalBlobs)


def publish(ws: Workspace) -> Snapshot | None:
    """Copy ``ws``'s index folder to the blob store and point :data:`LATEST` at it; None
    when the blob store is a local folder or the folder holds no index yet.

    Raises:
        StoreError: the blob store cannot be written.
    """
    folder = ws.index_dir
    if shared(ws) or not (folder / "hash.npz").exists():
        return None
    t0 = time.perf_counter()
    version = coordination.value(ws.db, coordination.GALLERY)
    prefix = f"indices/snap-{version:012d}-{uuid.uuid4().hex[:8]}"
    with persist.locked(folder):
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.is_file() and not p.name.startswith("."))
        size = 0
        for name in files:
            ws.blobs.put_file(f"{prefix}/{name}", folder / name)
            size += (folder / name).stat().st_size
    previous = _latest(ws)
    ws.blobs.put(LATEST, json.dumps({"version": version, "prefix": prefix, "files": files,
                                     "created": time.time(),
                                     "older": _older(previous)[:KEEP - 1]}).encode())
    for old in _older(previous)[KEEP - 1:]:
        _delete(ws, old)
    snap = Snapshot(version, prefix, files, size, time.perf_counter() - t0)
    log.info("index snapshot %s: %d file(s), %.1f MB, %.1f s", prefix, len(files),
             size / 2**20, snap.seconds)
    return snap


def restore(ws: Workspace) -> Snapshot | None:
    """Download the latest snapshot into ``ws``'s index folder when that folder holds no
    index (a new machine); None when there is nothing to do or no snapshot.

    Raises:
        StoreError: the blob store cannot be read.
    """
    folder = ws.index_dir
    if shared(ws) or (folder / "hash.npz").exists():
        return None
    latest = _latest(ws)
    if latest is None:
        return None
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    for name in latest["files"]:
        ws.blobs.get_file(f"{latest['prefix']}/{name}", folder / name)
        size += (folder / name).stat().st_size
    snap = Snapshot(latest["version"], latest["prefix"], latest["files"], size,
                    time.perf_counter() - t0)
    log.info("index snapshot %s restored: %.1f MB in %.1f s; gallery changes since it are "
             "applied next", snap.prefix, size / 2**20, snap.seconds)
    return snap


def _latest(ws: Workspace) -> dict | None:
    try:
        return json.loads(ws.blobs.get(LATEST))
    except BlobNotFound:
        return None


def _older(latest: dict | None) -> list[dict]:
    """Snapshots a new pointer supersedes: the previous one first, then its older ones."""
    if latest is None:
        return []
    head = {k: latest[k] for k in ("prefix", "files")}
    return [head, *latest.get("older", [])]


def _delete(ws: Workspace, snap: dict) -> None:
    for name in snap["files"]:
        ws.blobs.delete(f"{snap['prefix']}/{name}")


class Publisher:
    """Publishes after gallery changes, at most every ``every`` seconds: :meth:`changed`
    notes one, :meth:`tick` (called periodically, e.g. by the gallery sync's thread)
    publishes when one is pending and the last publication is old enough."""

    def __init__(self, ws: Workspace, every: float = PUBLISH_EVERY) -> None:
        self.ws, self.every = ws, every
        self._last = float("-inf")
        self._pending = False

    def changed(self) -> None:
        """Note a gallery change (published by a later :meth:`tick`)."""
        self._pending = True

    def tick(self) -> None:
        """Publish if a change is pending and due (errors are logged, retried later)."""
        if not self._pending or shared(self.ws) or time.monotonic() - self._last < self.every:
            return
        self._pending, self._last = False, time.monotonic()
        try:
            publish(self.ws)
        except Exception:  # noqa: BLE001 - a snapshot is an accelerator, not the truth
            self._pending = True
            log.exception("index snapshot not published")
