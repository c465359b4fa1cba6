"""Politeness for :class:`monitor.intake.fetcher.Fetcher`: ``Retry-After`` (RFC 9110 §10.2.3),
per-host slots and delays, and robots.txt (RFC 9309) cached per origin."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# -- politeness: per-host slots and delays -------------------------------------------------
class HostLimiter:
    """Per-host concurrency (a semaphore each) and a minimum gap between request starts.

    Thread-safe. ``delay`` seconds separate the *starts* of consecutive requests to
    one host; :meth:`set_delay` raises it for a host (robots.txt ``Crawl-delay``).
    """

    def __init__(self, concurrency: int, delay: float) -> None:
        self.concurrency, self.delay = max(1, concurrency), max(0.0, delay)
        self._lock = threading.Lock()
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._next: dict[str, float] = {}
        self._delays: dict[str, float] = {}

    def set_delay(self, host: str, seconds: float) -> None:
        """Use at least ``seconds`` between request starts to ``host``."""
        with self._lock:
            self._delays[host] = max(self.delay, seconds)

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of ``host``'s slots, starting no sooner than its delay allows."""
        with self._lock:
            sem = self._sems.setdefault(host, threading.BoundedSemaphore(self.concurrency))
        sem.acquire()
        try:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next.get(host, now))
                self._next[host] = start + self._delays.get(host, self.delay)
            if start > now:
                time.sleep(start - now)
            yield
        finally:
            sem.release()


# -- robots.txt (RFC 9309) ---------------------------------------------------------------
class RobotsCache:
    """Parsed robots.txt per origin (``urllib.robotparser``), fetched once per ``ttl`` seconds.

    ``fetch(robots_url) -> (status, text)`` (status 0: network failure). Per RFC 9309
    §2.3.1: 2xx is parsed; 4xx other than 429 means no rules (allow all); 429, 5xx
    and failures mean "unreachable" (disallow all until fetched again).
    """

    def __init__(self, user_agent: str, fetch: Callable[[str], tuple[int, str]],
                 on_crawl_delay: Callable[[str, float], None] | None = None,
                 ttl: float = 86_400.0) -> None:
        self.user_agent, self._fetch, self._on_delay, self.ttl = (user_agent, fetch,
                                                                  on_crawl_delay, ttl)
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, RobotFileParser]] = {}
        self._locks: dict[str, threading.Lock] = {}

    def allowed(self, url: str) -> bool:
        """Whether our user agent may fetch ``url``."""
        return self.parser(origin(url)).can_fetch(self.user_agent, url)

    def parser(self, origin: str) -> RobotFileParser:
        """The (cached) parser for ``origin`` (``scheme://host:port``)."""
        with self._lock:
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:
            entry = self._entries.get(origin)
            if entry and time.monotonic() - entry[0] < self.ttl:
                return entry[1]
            status, text = self._fetch(f"{origin}/robots.txt")
            rp = RobotFileParser(f"{origin}/robots.txt")
            if 200 <= status < 300:
                rp.parse(text.splitlines())
            elif 400 <= status < 500 and status != 429:
                rp.allow_all = True
            else:
                rp.disallow_all = True
            rp.modified()
            delay = rp.crawl_delay(self.user_agent) if 200 <= status < 300 else None
            if delay and self._on_delay:
                self._on_delay(urlsplit(origin).hostname or "", float(delay))
            self._entries[origin] = (time.monotonic(), rp)
            return rp


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (the robots.txt scope, RFC 9309 §2.3)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"
