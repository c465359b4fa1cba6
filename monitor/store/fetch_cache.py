"""Repository of the ``FetchCache`` table: validators of the last fetch of each URL.

:class:`DbValidatorCache` satisfies :class:`monitor.intake.fetch_cache.ValidatorCache`
(``get`` / ``put`` of :class:`monitor.types.Validators`) without importing intake.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from monitor.store.models import FetchCache, utcnow
from monitor.types import Validators


class DbValidatorCache:
    """Validators in the ``FetchCache`` table, one row per requested URL.

    Args:
        session_factory: makes a new SQLModel :class:`Session` (``Store.session``).
    """

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session = session_factory

    def get(self, url: str) -> Validators | None:
        """The validators stored for ``url``, or None."""
        with self._session() as s:
            row = s.get(FetchCache, url)
        if row is None:
            return None
        return Validators(row.etag, row.last_modified, row.sha256, row.status)

    def put(self, url: str, validators: Validators) -> None:
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
