"""Validators of past fetches for conditional requests (RFC 9110 §13.1).

:class:`ValidatorCache` is what :class:`monitor.intake.fetcher.Fetcher` needs; this module
holds the in-memory one. The database-backed one is
:class:`monitor.store.fetch_cache.DbValidatorCache` (the ``FetchCache`` table), which
satisfies the protocol; both speak :class:`monitor.types.Validators`, so intake never
imports the store.
"""

from __future__ import annotations

import threading
from typing import Protocol

from monitor.types import Validators


class ValidatorCache(Protocol):
    """Where validators of past fetches are kept, keyed by the requested URL."""

    def get(self, url: str) -> Validators | None:
        """The validators stored for ``url``, or None."""
        ...

    def put(self, url: str, validators: Validators) -> None:
        """Store ``validators`` for ``url`` (replacing older ones)."""
        ...


class MemoryValidatorCache:
    """In-process validator cache (tests, one-off use); thread-safe."""

    def __init__(self) -> None:
        self._d: dict[str, Validators] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Validators | None:
        """The validators stored for ``url``, or None."""
        with self._lock:
            return self._d.get(url)

    def put(self, url: str, validators: Validators) -> None:
        """Store ``validators`` for ``url``."""
        with self._lock:
            self._d[url] = validators
