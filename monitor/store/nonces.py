"""Repository of the request-nonce replay cache: :class:`~monitor.store.models.Nonce` rows.

A signed request's ``(key id, nonce)`` is inserted once; the primary key makes a second
insert fail, in every process sharing the database and across restarts, so the insert
*is* the replay check (no read-then-write race). Rows older than the signature window
can no longer match an accepted timestamp and are pruned. Times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from monitor.store.models import Nonce


def remember(session: Session, key_id: str, nonce: str, seen_at: datetime) -> bool:
    """Insert ``(key_id, nonce)`` seen at ``seen_at`` and commit; False (and nothing
    written) when that pair is already stored."""
    session.add(Nonce(key_id=key_id, nonce=nonce, seen_at=seen_at))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def prune(session: Session, before: datetime) -> int:
    """Delete the nonces seen before ``before`` and commit; returns how many went."""
    done = session.execute(delete(Nonce).where(Nonce.seen_at < before))
    session.commit()
    return done.rowcount or 0
