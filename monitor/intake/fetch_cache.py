"""Validators of past fetches for conditional requests (RFC 9110 §13.1): in memory, or
in the ``FetchCache`` table."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.exc import IntegrityError

from monitor.store.models import FetchCache, utcnow


# -- validators for conditional requests (RFC 9110 §13.1) ----------------------------------
@dataclass(frozen=True)
class Validators:
    """What a previous 2xx response said about its representation."""

    etag: str | None
    last_modified: str | None
    sha256: str | None
    status: int | None


class ValidatorCache(Protocol):
    """Where validators of past fetches are kept, keyed by the requested URL."""

    def get(self, url: str) -> Validators | None: ...

    def put(self, url: str, validators: Validators) -> None: ...


class MemoryValidatorCache:
    """In-process validator cache (tests, one-off use)."""

    def __init__(self) -> None:
        self._d: dict[str, Validators] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Validators | None:
        with self._lock:
            return self._d.get(url)

    def put(self, url: str, validators: Validators) -> None:
        with self._lock:
            self._d[url] = validators


class DbValidatorCache:
    """Validators in the ``FetchCache`` table; ``session`` makes a SQLModel session."""

    def __init__(self, session: Callable[[], object]) -> None:
        self._session = session

    def get(self, url: str) -> Validators | None:
        with self._session() as s:
            row = s.get(FetchCache, url)
        return Validators(row.etag, row.last_modified, row.sha256, row.status) if row else None

    def put(self, url: str, validators: Validators) -> None:
        with self._session() as s:
            row = s.get(FetchCache, url) or FetchCache(url=url)
            row.etag, row.last_modified = validators.etag, validators.last_modified
            row.sha256, row.status, row.fetched_at = validators.sha256, validators.status, utcnow()
            s.add(row)
            try:
                s.commit()
            except IntegrityError:  # another thread stored this URL first: keep theirs
                s.rollback()
