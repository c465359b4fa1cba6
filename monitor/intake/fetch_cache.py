"""Validators of past fetches for conditional requests (RFC 9110 §13.1).

:class:`ValidatorCache` is what :class:`monitor.intake.fetcher.Fetcher` needs; this module
holds the in-memory one. The database-backed one is
:class:`monitor.store.fetch_cache.DbValidatorCache` (the ``FetchCache`` table), which
satisfies the protocol structurally, so intake never imports the store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol


class ValidatorRecord(Protocol):
    """What a cache keeps per URL (read-only attributes); :class:`Validators` is one."""

    @property
    def etag(self) -> str | None: ...

    @property
    def last_modified(self) -> str | None: ...

    @property
    def sha256(self) -> str | None: ...

    @property
    def status(self) -> int | None: ...


@dataclass(frozen=True)
class Validators:
    """What a previous 2xx response said about its representation.

    Attributes:
        etag: the ``ETag`` header, or None.
        last_modified: the ``Last-Modified`` header (HTTP date text), or None.
        sha256: hex sha256 of the body then received, or None.
        status: that response's HTTP status, or None.
    """

    etag: str | None
    last_modified: str | None
    sha256: str | None
    status: int | None


class ValidatorCache(Protocol):
    """Where validators of past fetches are kept, keyed by the requested URL."""

    def get(self, url: str) -> ValidatorRecord | None:
        """The validators stored for ``url``, or None."""
        ...

    def put(self, url: str, validators: ValidatorRecord) -> None:
        """Store ``validators`` for ``url`` (replacing older ones)."""
        ...


class MemoryValidatorCache:
    """In-process validator cache (tests, one-off use); thread-safe."""

    def __init__(self) -> None:
        self._d: dict[str, ValidatorRecord] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> ValidatorRecord | None:
        """The validators stored for ``url``, or None."""
        with self._lock:
            return self._d.get(url)

    def put(self, url: str, validators: ValidatorRecord) -> None:
        """Store ``validators`` for ``url``."""
        with self._lock:
            self._d[url] = validators
