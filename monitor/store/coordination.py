"""Coordination of several processes through the database: named leases and counters.

* **Leases** (``rolelease`` table): at most one holder of a name at a time, for a time
  to live. :func:`acquire` takes a free or expired lease, or renews one's own, in one
  conditional ``UPDATE`` (an ``INSERT`` the first time; the primary key settles a race
  between two first takers). The active scheduler holds ``scheduler``; a standby keeps
  trying and takes over once the lease expires. Works the same on SQLite and
  PostgreSQL, and needs no connection held open (an advisory lock would die with its
  connection, but also needs one per holder).
* **Counters** (``counter`` table): :func:`bump` adds one inside the caller's
  transaction, so a reader that sees the new value also sees the change it stands for.
  ``gallery`` counts gallery changes; a process compares it with the value its indices
  were synced at (:func:`value`).

Times are timezone-aware UTC; durations are seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from monitor.store.models import utcnow

GALLERY = "gallery"
"""Counter bumped by every change of the live gallery (add, remove, restore, purge)."""


class RoleLease(SQLModel, table=True):
    """Who holds the lease ``name`` and until when."""

    name: str = Field(primary_key=True)
    holder: str
    expires_at: datetime
    acquired_at: datetime


class Counter(SQLModel, table=True):
    """A named, monotonically increasing integer."""

    name: str = Field(primary_key=True)
    value: int = 0


def acquire(db: Engine, name: str, holder: str, ttl: float) -> bool:
    """Take or renew lease ``name`` for ``holder`` until ``ttl`` seconds from now.

    Returns True when ``holder`` holds it now: it was free, had expired, or was already
    ``holder``'s (renewed). False while someone else's lease runs.
    """
    now = utcnow()
    until = now + timedelta(seconds=ttl)
    with Session(db) as s:
        mine = RoleLease.holder == holder
        n = s.execute(update(RoleLease).where(
            RoleLease.name == name, or_(mine, RoleLease.expires_at < now)).values(
            holder=holder, expires_at=until)).rowcount
        if n == 1:
            s.commit()
            return True
        if s.get(RoleLease, name) is not None:
            return False
        s.add(RoleLease(name=name, holder=holder, expires_at=until, acquired_at=now))
        try:
            s.commit()
        except IntegrityError:  # another process inserted it first: theirs
            return False
    return True


def take_over(db: Engine, name: str, dead: str, holder: str, ttl: float) -> bool:
    """Hand lease ``name`` from ``dead`` (a holder known to be gone, e.g. a process of this
    host that no longer exists) to ``holder`` for ``ttl`` seconds, without waiting for it
    to expire. False when ``dead`` no longer holds it."""
    with Session(db) as s:
        n = s.execute(update(RoleLease).where(RoleLease.name == name, RoleLease.holder == dead)
                      .values(holder=holder, acquired_at=utcnow(),
                              expires_at=utcnow() + timedelta(seconds=ttl))).rowcount
        s.commit()
    return n == 1


def release(db: Engine, name: str, holder: str) -> bool:
    """Give up ``holder``'s lease ``name`` at once (a clean shutdown lets a standby take
    over without waiting for the time to live); False when it was not ``holder``'s."""
    with Session(db) as s:
        n = s.execute(update(RoleLease).where(RoleLease.name == name,
                                              RoleLease.holder == holder)
                      .values(expires_at=utcnow() - timedelta(seconds=1))).rowcount
        s.commit()
    return n == 1


def holder_of(db: Engine, name: str) -> tuple[str, datetime] | None:
    """``(holder, expires_at)`` of lease ``name``, or None when it was never taken."""
    with Session(db) as s:
        row = s.get(RoleLease, name)
        return None if row is None else (row.holder, row.expires_at)


def bump(session: Session, name: str) -> None:
    """Add one to counter ``name`` in ``session``'s transaction (created at 1 when
    missing); the caller commits."""
    n = session.execute(update(Counter).where(Counter.name == name)
                        .values(value=Counter.value + 1)).rowcount
    if n == 0:
        session.add(Counter(name=name, value=1))
        session.flush()


def value(db: Engine, name: str) -> int:
    """The current value of counter ``name`` (0 when missing): one primary-key read."""
    with Session(db) as s:
        return s.execute(select(Counter.value).where(Counter.name == name)).scalar() or 0
