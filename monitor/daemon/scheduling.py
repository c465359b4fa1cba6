"""The scheduler part of a daemon: schedules, the sweep and the alert senders, on one
process at a time.

Started by ``monitor scheduler`` and by ``monitor serve`` (role ``all``). Only the
holder of the ``scheduler`` lease (:class:`monitor.daemon.leader.Leadership`) runs:

* APScheduler (job store in the database; :mod:`monitor.daemon.schedule`): scheduled
  source runs and the e-mail digest;
* the sweep every ``queue.sweep_every`` s (:func:`monitor.daemon.sweeper.sweep`):
  expired leases back to the queue, lost broker messages sent again;
* pending e-mail alerts and the outbound webhook sender.

A standby process keeps all of these stopped and takes over when the lease expires, so
starting two schedulers is safe: exactly one is active.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from monitor.daemon.leader import Leadership
from monitor.daemon.messages import Dispatcher
from monitor.daemon.metrics import Metrics
from monitor.daemon.sweeper import sweep
from monitor.services.workspace import Workspace
from monitor.store import coordination
from monitor.store.models import utcnow

log = logging.getLogger("monitor.scheduler")

LEASE = "scheduler"
"""Name of the lease the active scheduler holds."""


def elsewhere(ws: Workspace) -> dict[str, Any]:
    """``{"ok", "active", "holder"}`` seen from a process without a scheduler part: ok when
    some process holds an unexpired ``scheduler`` lease (``monitor scheduler`` runs)."""
    held = coordination.holder_of(ws.db, LEASE)
    live = held is not None and held[1] > utcnow()
    return {"ok": live, "active": False, "holder": held[0] if live else None}


class SchedulerPart:
    """Schedules, sweep and senders of one process, active while it holds the lease."""

    def __init__(self, ws: Workspace, config_path: str, dispatcher: Dispatcher,
                 stop: threading.Event, metrics: Metrics | None = None) -> None:
        from monitor.daemon.schedule import build_scheduler

        self.ws, self.config_path, self.dispatcher = ws, config_path, dispatcher
        self.stop, self.metrics = stop, metrics
        self.scheduler = build_scheduler(ws.db)
        self.sender: Any = None
        self._term: threading.Event | None = None
        self.leadership = Leadership(ws.db, LEASE, ws.settings.queue.scheduler_ttl,
                                     self._elected, self._deposed, stop)

    def start(self) -> None:
        """Start standing by (or leading at once when the lease is free)."""
        self.scheduler.start(paused=True)
        self.leadership.start()

    @property
    def leading(self) -> bool:
        """True while this process is the active scheduler."""
        return self.leadership.leading

    def _elected(self) -> None:
        from monitor.daemon.schedule import sync_sources
        from monitor.outcome.webhooks import WebhookSender

        jobs = sync_sources(self.scheduler, self.ws.settings, self.config_path)
        self.scheduler.resume()
        log.info("active scheduler; scheduled sources: %s", ", ".join(jobs) or "none")
        self._term = term = threading.Event()
        self.sender = WebhookSender(self.ws, term, self.metrics)
        self.sender.start()
        threading.Thread(target=self._maintain, args=(term,), name="sweep",
                         daemon=True).start()

    def _deposed(self) -> None:
        if self.scheduler.running:
            self.scheduler.pause()
        if self._term is not None:
            self._term.set()
            self.sender.join(5.0)

    def wake_sender(self) -> None:
        """Deliver pending webhooks now (a violation was just found in this process)."""
        if self.sender is not None:
            self.sender.wake.set()

    def _maintain(self, term: threading.Event) -> None:
        every = self.ws.settings.queue.sweep_every
        while not (term.is_set() or self.stop.is_set()):
            try:
                sweep(self.ws, self.dispatcher)
            except Exception:  # noqa: BLE001 - retried next pass
                log.exception("sweep failed")
            self._send_alerts()
            term.wait(every)

    def _send_alerts(self) -> None:
        """Deliver pending immediate e-mail alerts (outbox), when SMTP is configured."""
        if not self.ws.settings.smtp.host:
            return
        from monitor.outcome.notify import send_pending_alerts

        try:
            if n := send_pending_alerts(self.ws):
                log.info("sent %d alert(s)", n)
        except Exception:  # noqa: BLE001 - alerts record their own failures; retried
            log.exception("alert delivery failed")

    def health(self) -> dict[str, Any]:
        """``{"ok", "active", "holder", "jobs"}``: ok when some process (this one or
        another) holds an unexpired lease; ``jobs`` are this process's schedules."""
        held = coordination.holder_of(self.ws.db, LEASE)
        held = held if held is not None and held[1] > utcnow() else None
        jobs = [{"id": j.id, "next_run_time": j.next_run_time.isoformat()
                 if j.next_run_time else None} for j in self.scheduler.get_jobs()] \
            if self.leading else []
        return {"ok": self.leading or held is not None, "active": self.leading,
                "holder": held[0] if held else None, "jobs": jobs}

    def shutdown(self) -> None:
        """Stop leading (a standby takes over at once) and stop the scheduler."""
        self.leadership.resign()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
