"""Leases of the durable work queue (:mod:`monitor.store.queue`): take a job, then
complete it, fail it (retry with backoff, or ``error``), give it back, or recover it
when its worker is gone.

* **Leasing is atomic**: one ``UPDATE job SET status='running' … WHERE id =
  (SELECT id … WHERE status='queued' … LIMIT 1 FOR UPDATE SKIP LOCKED) AND
  status='queued' RETURNING id``. SQLite runs it as a single write transaction
  (WAL and ``busy_timeout`` are set by :func:`monitor.store.db.open_engine`; it
  has no row locks and SQLAlchemy leaves the ``FOR UPDATE`` out); on PostgreSQL
  the subquery locks the row it picks and skips rows other workers hold, so
  concurrent workers each get a different job instead of queueing behind one
  row and coming back empty. Two workers, threads or processes never get the
  same job.
* **Fencing**: the ``lease_until`` a worker received is its token. ``complete``,
  ``fail`` and ``release`` only touch a job still ``running`` under that same
  token, so a worker whose lease was recovered and handed to someone else
  cannot overwrite the newer state.
* ``attempts`` counts leases, so a job that kills its worker every time (a
  poison input) ends in ``error`` after ``max_attempts`` recoveries instead of
  looping forever.

Times are timezone-aware UTC; durations are seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlmodel import Session

from monitor.store.models import Job, utcnow

MAX_ATTEMPTS = 3
"""Leases a job gets before it is marked ``error``."""

BACKOFF = 5.0
"""First retry delay after a failure (seconds), doubled per attempt."""

BACKOFF_MAX = 600.0
"""Longest retry delay (seconds)."""


def _session(db: Engine) -> Session:
    return Session(db, expire_on_commit=False)


def lease(db: Engine, worker_id: str, lease_seconds: float = 300.0) -> Job | None:
    """Take the oldest due queued job for ``lease_seconds``; None when there is none.

    ``worker_id`` is only used in log lines of the caller; the returned job's
    ``lease_until`` is the fencing token for :func:`complete`, :func:`fail`
    and :func:`release`.
    """
    now = utcnow()
    stmt = lease_statement(now, now + timedelta(seconds=lease_seconds))
    with _session(db) as s:
        job = s.execute(stmt).scalars().first()  # the leased row itself: no second SELECT
        s.commit()
        return job


def lease_statement(now: datetime, until: datetime):
    """The one ``UPDATE … RETURNING`` that leases the oldest job due at ``now`` until
    ``until`` (see the module docstring: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
    due = (select(Job.id).where(Job.status == "queued",
                                or_(Job.not_before.is_(None), Job.not_before <= now))
           .order_by(Job.created_at, Job.id).limit(1)
           .with_for_update(skip_locked=True).scalar_subquery())
    return (update(Job).where(Job.id == due, Job.status == "queued")
            .values(status="running", lease_until=until, attempts=Job.attempts + 1,
                    updated_at=now)
            .returning(Job))


def _fenced(job: Job):
    return update(Job).where(Job.id == job.id, Job.status == "running",
                             Job.lease_until == job.lease_until)


def complete(db: Engine, job: Job, candidate_id: int | None = None) -> bool:
    """Mark a leased job ``done``; False when the lease was lost meanwhile."""
    with _session(db) as s:
        n = s.execute(_fenced(job).values(status="done", lease_until=None, error=None,
                                       candidate_id=candidate_id, updated_at=utcnow())).rowcount
        s.commit()
    return n == 1


def retry_delay(attempts: int, backoff: float = BACKOFF, cap: float = BACKOFF_MAX) -> float:
    """Seconds to wait before attempt ``attempts + 1``: ``backoff * 2**(attempts-1)``, capped."""
    return min(cap, backoff * 2 ** max(0, attempts - 1))


def fail(db: Engine, job: Job, reason: str, max_attempts: int = MAX_ATTEMPTS,
         backoff: float = BACKOFF) -> str:
    """Record a failed attempt: back to ``queued`` after a backoff, or ``error`` when spent.

    Returns the new status (``queued`` or ``error``), or ``lost`` when the lease
    had been taken away.
    """
    now = utcnow()
    if job.attempts >= max_attempts:
        values: dict[str, Any] = {"status": "error", "not_before": None}
    else:
        values = {"status": "queued",
                  "not_before": now + timedelta(seconds=retry_delay(job.attempts, backoff))}
    with _session(db) as s:
        n = s.execute(_fenced(job).values(lease_until=None, error=reason[:2000], updated_at=now,
                                       **values)).rowcount
        s.commit()
    return values["status"] if n == 1 else "lost"


def release(db: Engine, job: Job) -> bool:
    """Give a leased job back untouched (shutdown): queued again, the attempt not counted."""
    with _session(db) as s:
        n = s.execute(_fenced(job).values(status="queued", lease_until=None,
                                       attempts=Job.attempts - 1,
                                       updated_at=utcnow())).rowcount
        s.commit()
    return n == 1


def recover(db: Engine, max_attempts: int = MAX_ATTEMPTS, all_running: bool = False) -> int:
    """Put jobs whose lease ran out back in the queue; returns how many.

    ``all_running`` recovers every ``running`` job whatever its lease: the
    daemon does this at start-up, when no worker of a previous process can
    still be alive (one daemon per database). Jobs that have used up
    ``max_attempts`` leases go to ``error`` instead (a poison input that kills
    its worker must not loop forever).
    """
    now = utcnow()
    cond = [Job.status == "running"]
    if not all_running:
        cond.append(or_(Job.lease_until.is_(None), Job.lease_until < now))
    with _session(db) as s:
        spent = s.execute(update(Job).where(*cond, Job.attempts >= max_attempts).values(
            status="error", lease_until=None, updated_at=now,
            error=f"worker lost {max_attempts} times (crash or timeout while checking)")).rowcount
        back = s.execute(update(Job).where(*cond).values(
            status="queued", lease_until=None, updated_at=now)).rowcount
        s.commit()
    return back + spent
