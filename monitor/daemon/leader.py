"""One active holder of a role among processes: a lease in the database, renewed.

Two ``monitor scheduler`` processes (or a scheduler beside ``monitor serve``) must not
both run the schedules, the sweep and the alert senders: the one holding the
``scheduler`` lease (:mod:`monitor.store.coordination`) does; the other stands by and
tries again every third of ``queue.scheduler_ttl``. A holder that stops renewing
(killed, frozen, cut off from the database) loses the lease when it expires, and a
standby takes over within one more try; a holder that was a process of the same host
and no longer exists is replaced at once. A holder that fails to renew steps down at
once, before its lease could have passed to another.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from sqlalchemy import Engine

from monitor.store import coordination

log = logging.getLogger("monitor.leader")


def holder_id() -> str:
    """``host:pid:random`` naming this process as a lease holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    """Keeps trying to hold lease ``name``; calls ``on_elected`` when it gets it and
    ``on_deposed`` when it loses it (both from its own thread).

    Attributes:
        holder: this process's holder id.
        leading: True while this process holds the lease.
    """

    def __init__(self, db: Engine, name: str, ttl: float, on_elected: Callable[[], None],
                 on_deposed: Callable[[], None], stop: threading.Event) -> None:
        self.db, self.name, self.ttl = db, name, ttl
        self.on_elected, self.on_deposed, self.stop = on_elected, on_deposed, stop
        self.holder = holder_id()
        self.leading = False
        self._thread = threading.Thread(target=self._loop, name=f"lease-{name}", daemon=True)

    def start(self) -> None:
        """Try at once, then keep trying or renewing in the background."""
        self._tick()
        self._thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(self.ttl / 3):
            self._tick()

    def _tick(self) -> None:
        try:
            held = coordination.acquire(self.db, self.name, self.holder, self.ttl)
            if not held and (gone := self._gone_holder()) is not None:
                held = coordination.take_over(self.db, self.name, gone, self.holder, self.ttl)
        except Exception:  # noqa: BLE001 - a database we cannot reach: we do not lead
            log.exception("lease %s: cannot reach the database", self.name)
            held = False
        if held and not self.leading:
            self.leading = True
            log.info("lease %s taken by %s: active", self.name, self.holder)
            self.on_elected()
        elif not held and self.leading:
            self.leading = False
            log.warning("lease %s lost by %s: standing by", self.name, self.holder)
            self.on_deposed()
        elif not held and not self.leading:
            log.debug("lease %s held elsewhere: standing by", self.name)

    def _gone_holder(self) -> str | None:
        """The current holder when it is a process of this host that no longer runs (its
        lease may still have time to live: a killed ``monitor serve`` restarted at once
        should not wait for it)."""
        held = coordination.holder_of(self.db, self.name)
        if held is None:
            return None
        host, _, rest = held[0].partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
            return None
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return held[0]
        except PermissionError:  # alive, another user's
            return None
        return None

    def resign(self) -> None:
        """Stop leading and free the lease at once (clean shutdown)."""
        if self.leading:
            self.leading = False
            self.on_deposed()
        try:
            coordination.release(self.db, self.name, self.holder)
        except Exception:  # noqa: BLE001 - it expires on its own
            log.debug("lease %s: release failed", self.name, exc_info=True)
