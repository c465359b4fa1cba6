"""The job table's side of a task-queue broker: lease one named job, find lost messages.

With a broker (``queue.broker_url``) a message carries only a job id; the ``job`` row
(:mod:`monitor.store.queue`) stays the truth. A worker handed a message leases *that*
job with :func:`lease_job`: one conditional ``UPDATE … WHERE id = :id AND status =
'queued' AND due``, so a message delivered twice (a redelivery after a worker died, or
a sweep that sent it again) is checked once: the second delivery leases nothing and is
acknowledged. A job whose message was lost (a broker restarted without persistence)
stays ``queued``; :func:`stale` finds it for the sweeper to send again, and
:func:`touch` marks it sent so the next sweep waits another ``sweep_after``.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, or_, select, update
from sqlmodel import Session

from monitor.store.models import Job, utcnow


def lease_job(db: Engine, job_id: str, lease_seconds: float) -> Job | None:
    """Lease job ``job_id`` for ``lease_seconds`` when it is queued and due; None when it
    is unknown, already leased or finished, or not due yet (a retry's backoff).

    The returned job's ``lease_until`` is the fencing token for
    :func:`monitor.store.queue.complete` / ``fail`` / ``release``.
    """
    now = utcnow()
    stmt = (update(Job).where(Job.id == job_id, Job.status == "queued",
                              or_(Job.not_before.is_(None), Job.not_before <= now))
            .values(status="running", lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=Job.attempts + 1, updated_at=now)
            .returning(Job))
    with Session(db, expire_on_commit=False) as s:
        job = s.execute(stmt).scalars().first()
        s.commit()
        return job


def stale(db: Engine, older_than: float, limit: int = 1000) -> list[str]:
    """Ids of due ``queued`` jobs untouched for ``older_than`` seconds, oldest first (at
    most ``limit``): their message is presumed lost."""
    now = utcnow()
    q = (select(Job.id).where(Job.status == "queued",
                              Job.updated_at < now - timedelta(seconds=older_than),
                              or_(Job.not_before.is_(None), Job.not_before <= now))
         .order_by(Job.updated_at).limit(limit))
    with Session(db) as s:
        return list(s.execute(q).scalars())


def expired(db: Engine) -> list[str]:
    """Ids of ``running`` jobs whose lease has run out (their worker died or hung): what
    :func:`monitor.store.queue.recover` is about to queue again."""
    now = utcnow()
    q = select(Job.id).where(Job.status == "running",
                             or_(Job.lease_until.is_(None), Job.lease_until < now))
    with Session(db) as s:
        return list(s.execute(q).scalars())


def touch(db: Engine, ids: list[str]) -> int:
    """Set ``updated_at`` of the still-queued jobs ``ids`` to now (their message was just
    sent); returns how many."""
    if not ids:
        return 0
    with Session(db) as s:
        n = s.execute(update(Job).where(Job.id.in_(ids), Job.status == "queued")
                      .values(updated_at=utcnow())).rowcount
        s.commit()
    return n


def dead_letters(db: Engine, limit: int = 5) -> list[Job]:
    """The most recently failed-for-good jobs (``error``: their attempts spent), newest
    first, at most ``limit``."""
    q = select(Job).where(Job.status == "error").order_by(Job.updated_at.desc()).limit(limit)
    with Session(db, expire_on_commit=False) as s:
        return list(s.execute(q).scalars())
