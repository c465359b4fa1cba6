"""Repository of the alert outbox: :class:`~monitor.store.models.Alert` rows and their
delivery state (immediate mails, digests, webhooks).

The check pipeline inserts pending rows (:mod:`monitor.store.candidates`); the senders
in :mod:`monitor.outcome` find the due ones here, claim them, and save what happened.
Times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import Session, select

from monitor.store.models import Alert


def due_alerts(session: Session, kind: str, now: datetime,
               limit: int | None = None) -> list[int]:
    """Ids of the ``pending`` alerts of ``kind`` due at ``now`` (no ``next_attempt_at``, or
    one not after ``now``), oldest first, at most ``limit`` (None: all)."""
    q = (select(Alert.id).where(
        Alert.kind == kind, Alert.status == "pending",
        or_(Alert.next_attempt_at.is_(None), Alert.next_attempt_at <= now))
        .order_by(Alert.id))
    if limit is not None:
        q = q.limit(limit)
    return list(session.exec(q).all())


def get_alert(session: Session, alert_id: int) -> Alert | None:
    """The alert ``alert_id``, or None."""
    return session.get(Alert, alert_id)


def claim_alert(session: Session, alert: Alert, lease_until: datetime) -> bool:
    """Take ``alert`` for sending with one conditional UPDATE: attempts + 1 and
    ``next_attempt_at = lease_until``, only while it is still ``pending`` with the
    attempts read. Commits; False when another sender got there first."""
    done = session.execute(update(Alert).where(Alert.id == alert.id, Alert.status == "pending",
                                               Alert.attempts == alert.attempts)
                           .values(attempts=alert.attempts + 1, next_attempt_at=lease_until))
    session.commit()
    return done.rowcount == 1


def save_alert(session: Session, alert: Alert) -> Alert:
    """Insert or update ``alert``; commits and returns it refreshed (``id`` set)."""
    session.add(alert)
    session.commit()
    session.refresh(alert)
    return alert


def last_sent_digest(session: Session) -> Alert | None:
    """The sent digest whose period ends last, or None when none was sent (one without a
    period end comes last: PostgreSQL would sort it first, SQLite last)."""
    return session.exec(select(Alert).where(Alert.kind == "digest", Alert.status == "sent")
                        .order_by(Alert.period_end.desc().nulls_last(), Alert.id.desc())
                        ).first()


def alerts_of(session: Session, violation_id: int) -> list[Alert]:
    """Every alert of one violation (any kind and state), oldest first."""
    return list(session.exec(select(Alert).where(Alert.violation_id == violation_id)
                             .order_by(Alert.id)).all())


def pending_alerts(session: Session, kind: str) -> list[Alert]:
    """Every ``pending`` alert of ``kind``, due or not, oldest first."""
    return list(session.exec(select(Alert).where(Alert.kind == kind, Alert.status == "pending")
                             .order_by(Alert.id)).all())
