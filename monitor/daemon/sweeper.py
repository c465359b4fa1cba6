"""The sweep of the active scheduler: nothing accepted is left behind.

Every ``queue.sweep_every`` seconds (:meth:`monitor.daemon.roles.SchedulerRole`):

1. jobs whose lease ran out (a worker killed or hung) go back to ``queued``
   (:func:`monitor.store.queue.recover`; ``error`` after ``queue.max_attempts`` leases)
   and get a new message at once;
2. due jobs ``queued`` for ``queue.sweep_after`` seconds without being taken get a
   new message: theirs was lost (a broker restarted without persistence, or it was
   down when they were accepted). A duplicate message costs one ``UPDATE`` that leases
   nothing (:func:`monitor.store.dispatch.lease_job`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitor.daemon.messages import Dispatcher
from monitor.services.workspace import Workspace
from monitor.store import dispatch, queue

log = logging.getLogger("monitor.sweeper")


@dataclass(frozen=True)
class Swept:
    """What one :func:`sweep` did.

    Attributes:
        recovered: jobs whose lease ran out, queued again (or marked error).
        resent: messages sent for recovered and stale jobs.
    """

    recovered: int
    resent: int


def sweep(ws: Workspace, dispatcher: Dispatcher) -> Swept:
    """One pass of the sweep over ``ws``'s job table (see the module docstring)."""
    q = ws.settings.queue
    dead = dispatch.expired(ws.db)
    recovered = queue.recover(ws.db, q.max_attempts) if dead else 0
    ids = dead + [i for i in dispatch.stale(ws.db, q.sweep_after) if i not in set(dead)]
    sent = dispatcher.send_now(ids) if ids else 0
    dispatch.touch(ws.db, ids[:sent])
    if recovered or sent:
        log.warning("sweep: %d job(s) whose lease ran out queued again; %d message(s) sent "
                    "again", recovered, sent)
    return Swept(recovered, sent)
