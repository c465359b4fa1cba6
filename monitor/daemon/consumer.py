"""Workers fed by the broker: each message names a job; the job row decides what runs.

For every ``check_job(job_id)`` message a worker thread leases that job
(:func:`monitor.store.dispatch.lease_job`). Nothing to lease (another worker has it,
it is done, or a retry is not due) means a duplicate message: acknowledged, nothing
run. Otherwise the job is checked exactly as by the embedded workers
(:func:`monitor.daemon.worker.process`); a failure that will be retried is sent again
with the backoff as its delay. A worker killed mid-check leaves its job ``running``
until the lease runs out; the scheduler's sweep then queues it again and sends a new
message, so the job is checked once more, into the same rows (checks are idempotent).
"""

from __future__ import annotations

import logging
import threading

from monitor.daemon.broker import Broker
from monitor.daemon.state import AppState
from monitor.daemon.worker import InFlight, process
from monitor.store import dispatch, queue
from monitor.store.models import Job

log = logging.getLogger("monitor.worker")


class BrokerWorkers:
    """``n`` threads consuming check messages from ``broker`` for workspace ``st.ws``.

    Same surface as :class:`monitor.daemon.worker.Workers` (``start``, ``alive``,
    ``join``), so the daemon runs either.
    """

    def __init__(self, st: AppState, broker: Broker, n: int, on_violation=None) -> None:
        self.st, self.broker, self.n = st, broker, n
        self.on_violation = on_violation
        self.in_flight = InFlight()
        self._started = False

    def start(self) -> None:
        """Start consuming."""
        self.broker.consume(self._handle, self.n)
        self._started = True

    def alive(self) -> int:
        """Consuming threads (``n`` while running, 0 after :meth:`join`)."""
        return self.n if self._started else 0

    def join(self, timeout: float) -> list[Job]:
        """Stop consuming (current checks finish, up to ``timeout`` s); release and return
        jobs still unfinished."""
        self.broker.stop(timeout)
        self._started = False
        return self.in_flight.release_all(self.st.ws.db)

    def _handle(self, job_id: str) -> None:
        q = self.st.settings.queue
        job = dispatch.lease_job(self.st.ws.db, job_id, q.lease_seconds)
        if job is None:
            log.debug("job %s: nothing to lease (taken, finished or not due)", job_id)
            return
        with self.in_flight.held(job):
            status = process(self.st, threading.current_thread().name, job,
                             self.on_violation)
        if status == "queued":  # retried after the backoff the job row recorded
            delay = queue.retry_delay(job.attempts, q.backoff)
            try:
                self.broker.send(job.id, delay)
            except Exception:  # noqa: BLE001 - the sweeper sends it again
                log.warning("job %s: retry message not sent; the sweep will", job.id)
