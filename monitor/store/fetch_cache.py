"""Repository of the ``FetchCache`` table: validators of the last fetch of each URL.

:class:`DbValidatorCache` satisfies :class:`monitor.intake.fetch_cache.ValidatorCache`
structurally (``get`` / ``put`` of objects with ``etag``, ``last_modified``, ``sha256``
and ``status``), so the store does not import intake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from monitor.store.models import FetchCache, utcnow


class _Validators(Protocol):
    @property
    def etag(self) -> str | None: ...

    @property
    def last_modified(self) -> str | None: ...

    @property
    def sha256(self) -> str | None: ...

    @property
    def status(self) -> int | None: ...


@dataclass(frozen=True)
class StoredValidators:
    """Validators read back from a ``FetchCache`` row.

    Attributes:
        etag, last_modified: the response headers as received (None when absent).
        sha256: hex sha256 of the body then received; status: its HTTP status.
    """

    etag: str | None
    last_modified: str | None
    sha256: str | None
    status: int | None


class DbValidatorCache:
    """Validators in the ``FetchCache`` table, one row per requested URL.

    Args:
        session_factory: makes a new SQLModel :class:`Session` (``Store.session``).
    """

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session = session_factory

    def get(self, url: str) -> StoredValidators | None:
        """The validators stored for ``url``, or None."""
        with self._session() as s:
            row = s.get(FetchCache, url)
        if row is None:
            return None
        return StoredValidators(row.etag, row.last_modified, row.sha256, row.status)

    def put(self, url: str, validators: _Validators) -> None:
        """Store ``validators`` for ``url`` (``fetched_at`` now); when another thread
        inserted the URL first, theirs is kept."""
        with self._session() as s:
            row = s.get(FetchCache, url) or FetchCache(url=url)
            row.etag, row.last_modified = validators.etag, validators.last_modified
            row.sha256, row.status, row.fetched_at = validators.sha256, validators.status, utcnow()
            s.add(row)
            try:
                s.commit()
            except IntegrityError:  # another thread stored this URL first: keep theirs
                s.rollback()
