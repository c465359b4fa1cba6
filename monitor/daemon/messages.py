"""Telling workers about new jobs: a wake-up in one process, a broker message between many.

:class:`Dispatcher` is what the accept path, the scheduler and the sweeper call after
jobs were committed. Embedded queue (no broker): it wakes the in-process workers.
With a broker: a background thread sends one message per job id, so an HTTP handler
never waits on the broker and a broker that is down costs a log line, not a request:
the job is in the database already, and the sweep (:mod:`monitor.daemon.sweeper`)
sends it once the broker answers again.

APScheduler runs its jobs with pickled arguments, so a scheduled source run reaches
the dispatcher of its process through :func:`notify` (the one :meth:`Dispatcher.activate`
made current).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from queue import SimpleQueue

from monitor.daemon.broker import Broker

log = logging.getLogger("monitor.dispatch")

_active: Dispatcher | None = None


class Dispatcher:
    """Hands new job ids to the workers: ``broker`` messages, or ``wake`` when None.

    Attributes:
        sent, failed: messages sent and sends that failed, since start.
        last_error: the error of the last send when it failed (None after a success).
    """

    def __init__(self, broker: Broker | None, wake: threading.Event) -> None:
        self.broker, self.wake = broker, wake
        self.sent = self.failed = 0
        self.last_error: str | None = None
        self._q: SimpleQueue = SimpleQueue()
        self._thread: threading.Thread | None = None
        if broker is not None:
            self._thread = threading.Thread(target=self._loop, name="dispatch", daemon=True)
            self._thread.start()

    def activate(self) -> Dispatcher:
        """Make this the dispatcher :func:`notify` uses in this process; returns self."""
        global _active
        _active = self
        return self

    def jobs_created(self, ids: Iterable[str]) -> None:
        """Announce committed jobs ``ids`` (returns at once)."""
        if self.broker is None:
            self.wake.set()
            return
        for job_id in ids:
            self._q.put(job_id)

    def send_now(self, ids: list[str]) -> int:
        """Send a message for each of ``ids`` from the calling thread (the sweep); returns
        how many were sent before the broker failed (the rest wait for the next sweep)."""
        if self.broker is None:
            self.wake.set()
            return len(ids)
        for n, job_id in enumerate(ids):
            try:
                self.broker.send(job_id)
                self.sent, self.last_error = self.sent + 1, None
            except Exception as exc:  # noqa: BLE001 - retried by the next sweep
                self.failed, self.last_error = self.failed + 1, f"{type(exc).__name__}: {exc}"
                log.warning("broker unreachable, %d message(s) left for the next sweep: %s",
                            len(ids) - n, exc)
                return n
        return len(ids)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is pending (up to ``timeout`` s), then stop the sender thread."""
        global _active
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout)
        if _active is self:
            _active = None

    def _loop(self) -> None:
        while (job_id := self._q.get()) is not None:
            try:
                self.broker.send(job_id)
                self.sent, self.last_error = self.sent + 1, None
            except Exception as exc:  # noqa: BLE001 - the job waits in the database
                self.failed, self.last_error = self.failed + 1, f"{type(exc).__name__}: {exc}"
                log.warning("job %s: message not sent (%s); the sweep sends it later",
                            job_id, exc)


def notify(ids: Iterable[str]) -> None:
    """Announce committed jobs through this process's active dispatcher (none: nothing to
    do, e.g. a CLI run whose jobs the daemon's workers find on their own)."""
    if _active is not None:
        _active.jobs_created(ids)
