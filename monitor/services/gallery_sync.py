"""Following gallery changes made by other processes, incrementally.

Every change of the live gallery bumps the ``gallery`` counter in its own transaction
(:mod:`monitor.store.coordination`). A process that matches (a ``monitor worker``, the
api, ``monitor serve``) reads that counter every ``queue.gallery_sync`` seconds (one
primary-key read); when it moved, it reconciles its in-memory indices with the live
ids (:func:`monitor.matching.persist.reconcile`): ids no longer live are removed, new
ones fetched and added, verification records another process saved to the shared
feature store read rather than recomputed. Nothing is rebuilt, so a change of one
image costs one image, and many workers syncing at once read only ids and the new
rows (the stampede of ThreatExchange HMA #1813, every matcher rebuilding its whole
index from the database, cannot happen).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from monitor.services.workspace import Workspace
from monitor.store import coordination

log = logging.getLogger("monitor.gallery_sync")


@dataclass(frozen=True)
class Synced:
    """One catch-up of :meth:`GallerySync.poll`.

    Attributes:
        version: the gallery version the indices now reflect.
        images: live protected images after it.
        seconds: wall time of the reconcile (write lock held).
    """

    version: int
    images: int
    seconds: float


class GallerySync:
    """Keeps ``ws``'s loaded engine at the database's gallery version.

    Args:
        ws: the workspace whose engine is synced (loaded by the first :meth:`poll`
            if not yet).
        write_lock: returns the context manager that excludes checks while the indices
            change (the daemon's gallery write lock).
        save: write the caught-up indices back to the index folder and publish it to the
            blob store now and then (:mod:`monitor.services.snapshots`): True for processes
            that keep the snapshot current; workers keep their catch-up in memory.
    """

    def __init__(self, ws: Workspace, write_lock: Callable[[], AbstractContextManager],
                 save: bool = False) -> None:
        from monitor.services.snapshots import Publisher

        self.ws, self.write_lock, self.save = ws, write_lock, save
        self.publisher = Publisher(ws) if save else None
        self.version = -1
        self.last: Synced | None = None
        self._thread: threading.Thread | None = None

    def mark(self) -> int:
        """Record the current version as the one the indices reflect; call it *before*
        the engine loads (a change during the load is then caught by the next poll)."""
        self.version = coordination.value(self.ws.db, coordination.GALLERY)
        return self.version

    def poll(self) -> Synced | None:
        """Catch up when the version moved; None when it had not."""
        version = coordination.value(self.ws.db, coordination.GALLERY)
        if version == self.version:
            return None
        t0 = time.perf_counter()
        with self.write_lock():
            engine = self.ws.engine()
            live = self.ws.live_ids()
            changed = engine.reconcile(live, lambda ids: self.ws.fetch_entries(engine, ids))
            if changed and self.save:
                engine.save(self.ws.index_dir)
            self.ws.gallery_changed()
        if self.publisher is not None:
            self.publisher.changed()
        self.version = version
        self.last = Synced(version, len(live), time.perf_counter() - t0)
        log.info("gallery version %d: indices synced, %d image(s), %.0f ms", version,
                 len(live), 1000 * self.last.seconds)
        return self.last

    def start(self, stop: threading.Event, every: float) -> None:
        """Poll every ``every`` seconds in a background thread until ``stop`` is set
        (errors are logged and retried at the next poll)."""
        def loop() -> None:
            while not stop.wait(every):
                try:
                    self.poll()
                    if self.publisher is not None:
                        self.publisher.tick()
                except Exception:  # noqa: BLE001 - a lost database or a bad row: next poll
                    log.exception("gallery sync failed")

        self._thread = threading.Thread(target=loop, name="gallery-sync", daemon=True)
        self._thread.start()
