"""Shared state of one running daemon, handed to the HTTP routers and the workers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from monitor.daemon.messages import Dispatcher
from monitor.daemon.metrics import Metrics
from monitor.services.signing import ApiKey
from monitor.services.workspace import Workspace
from monitor.store import queue

DEPTH_TTL = 0.5
"""Seconds a queue-depth reading is reused by the accept path."""


class RWLock:
    """Many readers or one writer (writer-preferring).

    Checks read the gallery indices concurrently; adding or removing gallery
    images mutates them and takes the write side.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared."""
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively."""
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class AppState:
    """What the routers need: workspace, secret, metrics, locks and wake-ups.

    Attributes:
        ws: the workspace; its engine is loaded before the app serves.
        secret: HMAC key for inbound signatures ("" when none is configured).
        gallery_lock: read by checks and searches, written by gallery changes.
        wake: set after an enqueue so idle workers look at once.
        extra_health: adds daemon parts (scheduler, workers) to ``/healthz``.
        batcher: group-commits submissions (None: one transaction each).
        keys: the API keys by id, read and vetted once at start
            (:func:`monitor.services.signing.keyring`); None: read on first use.
        dispatcher: tells the workers about new jobs (a broker message per job, or a
            wake-up of this process's workers); None: :attr:`wake` only.
    """

    ws: Workspace
    secret: str
    metrics: Metrics
    gallery_lock: RWLock = field(default_factory=RWLock)
    wake: threading.Event = field(default_factory=threading.Event)
    extra_health: Callable[[], dict[str, Any]] | None = None
    batcher: queue.Batcher | None = None
    keys: dict[str, ApiKey] | None = None
    dispatcher: Dispatcher | None = None
    _depth: tuple[float, int] = (0.0, 0)
    _depth_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def settings(self):
        """The daemon's settings."""
        return self.ws.settings

    def depth(self, fresh: bool = False) -> int:
        """Queue depth, re-read from the database at most every :data:`DEPTH_TTL` seconds."""
        with self._depth_lock:
            at, value = self._depth
            if fresh or time.monotonic() - at > DEPTH_TTL:
                value = queue.depth(self.ws.db)
                self._depth = (time.monotonic(), value)
            return value

    async def enqueue(self, **request: Any) -> queue.Enqueued:
        """Enqueue through the batcher (group commit) when there is one.

        Raises:
            QueueFull: the queue holds ``max_depth`` jobs.
        """
        if self.batcher is None:
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(lambda: queue.enqueue(self.ws.db, **request))
        return await asyncio.wrap_future(self.batcher.submit(**request))

    def announce(self, job_id: str) -> None:
        """Tell the workers job ``job_id`` was committed (returns at once)."""
        if self.dispatcher is None:
            self.wake.set()
        else:
            self.dispatcher.jobs_created([job_id])

    def bump_depth(self) -> None:
        """Count a job just created into the cached depth."""
        with self._depth_lock:
            at, value = self._depth
            self._depth = (at, value + 1)
