"""A polite, safe HTTP fetcher for candidate images and crawled documents (httpx).

One :class:`Fetcher` per workspace (``Workspace.fetcher``) so its per-host
limits hold across threads. Each request:

1. is refused unless http(s) with a host;
2. is checked against ``robots.txt`` for the configured user agent (RFC 9309:
   4xx means allow all, 5xx or network failure means disallow all, cached per
   host for 24 h, ``Crawl-delay`` raises the per-host delay);
3. waits for a per-host slot (``per_host_concurrency``) and for
   ``per_host_delay`` seconds since the previous request to that host began;
4. connects only to addresses the SSRF guard
   (:class:`monitor.intake.address_policy.AddressPolicy`) allows, checked on the DNS
   answer actually connected to, on every hop;
5. follows at most ``max_redirects`` redirects (robots and the guard re-checked);
6. sends ``If-None-Match`` / ``If-Modified-Since`` from the validator cache when
   asked (RFC 9110 §13.1); a 304 gives ``not_modified=True`` and no body;
7. streams the body up to a byte cap, within ``timeout`` seconds in total
   (``connect_timeout`` for the TCP/TLS connect), sniffing images early;
8. retries 429, 5xx and network errors up to ``retries`` times with exponential
   backoff (``backoff`` seconds, doubled), honouring ``Retry-After`` (seconds or
   an HTTP date, RFC 9110 §10.2.3), each wait capped at ``backoff_max`` seconds.

The parts live beside it: :mod:`monitor.intake.fetch_policy` (robots.txt, per-host slots,
``Retry-After``), :mod:`monitor.intake.fetch_transport` (the SSRF-guarded connection),
:mod:`monitor.intake.address_policy` (which addresses and URLs are allowed),
:mod:`monitor.intake.content_check` (non-images refused) and
:mod:`monitor.intake.fetch_cache` (validators; the database-backed cache is
:class:`monitor.store.fetch_cache.DbValidatorCache`).
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

from monitor.config.daemon import FetchSettings
from monitor.errors import (
    AddressRefused,
    FetchError,
    FetchTimeout,
    HostNotFound,
    HTTPStatusError,
    InputTooLarge,
    RobotsDisallowed,
    TooManyRedirects,
)
from monitor.intake.address_policy import AddressPolicy, check_url_shape
from monitor.intake.content_check import SNIFF_BYTES, check_image_body
from monitor.intake.fetch_cache import MemoryValidatorCache, ValidatorCache, Validators
from monitor.intake.fetch_policy import HostLimiter, RobotsCache, origin, retry_after
from monitor.intake.fetch_transport import _transport

__all__ = ["DOCUMENT_MAX_BYTES", "FetchResult", "FetchTimeout", "Fetcher",
           "HTTPStatusError", "HostLimiter", "MemoryValidatorCache", "RobotsCache",
           "RobotsDisallowed", "TooManyRedirects", "ValidatorCache", "Validators",
           "retry_after"]

DOCUMENT_MAX_BYTES = 10_000_000
"""Byte cap for pages, sitemaps and feeds (images use the decode limit)."""

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

Expect = Literal["image", "document"]


@dataclass(frozen=True)
class FetchResult:
    """One completed fetch.

    Attributes:
        url: the URL asked for. final_url: after redirects.
        status: HTTP status of the last response (304 when ``not_modified``).
        headers: response headers, lower-case names.
        body: the bytes (empty when ``not_modified``).
        not_modified: the server said the cached copy is current (RFC 9110 §15.4.5).
        cached_sha256: for ``not_modified``, the sha256 of the bytes seen last time.
    """

    url: str
    final_url: str
    status: int
    headers: dict[str, str]
    body: bytes
    not_modified: bool = False
    cached_sha256: str | None = None

    @property
    def content_type(self) -> str:
        """Media type without parameters, lower case ('' when absent)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def sha256(self) -> str:
        """Hex sha256 of the body (or the cached one when not modified)."""
        if self.not_modified and self.cached_sha256:
            return self.cached_sha256
        return hashlib.sha256(self.body).hexdigest()


class _Retry(Exception):
    def __init__(self, error: FetchError, wait: float | None) -> None:
        self.error, self.wait = error, wait


class Fetcher:
    """Thread-safe polite fetcher; see the module docstring for what each request goes through.

    Args:
        settings: the ``[fetch]`` settings.
        max_bytes: byte cap for images (documents use ``DOCUMENT_MAX_BYTES`` or less).
        cache: validators for conditional requests (None: never conditional).
        allow_networks: CIDR networks allowed besides public addresses (see
            :class:`~monitor.intake.address_policy.AddressPolicy`).
        sleep: how to wait (tests may record instead).
    """

    def __init__(self, settings: FetchSettings, max_bytes: int = 50_000_000,
                 cache: ValidatorCache | None = None, allow_networks: Iterable[str] = (),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings, self.max_bytes, self.cache, self.sleep = settings, max_bytes, cache, sleep
        self.policy = AddressPolicy.build(settings.allow_private, allow_networks)
        self.limiter = HostLimiter(settings.per_host_concurrency, settings.per_host_delay)
        self.robots = RobotsCache(settings.user_agent, self._fetch_robots,
                                  lambda host, d: self.limiter.set_delay(
                                      host, min(d, settings.backoff_max)))
        conns = max(10, settings.per_host_concurrency * 8)
        limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
        self._client = httpx.Client(transport=_transport(self.policy, limits), trust_env=False,
                                    follow_redirects=False,
                                    headers={"User-Agent": settings.user_agent})

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets our user agent fetch ``url`` (always true when not respected)."""
        if not self.settings.respect_robots:
            return True
        return self.robots.allowed(url)

    def fetch(self, url: str, *, expect: Expect = "image", conditional: bool = False,
              max_bytes: int | None = None, robots: bool = True) -> FetchResult:
        """GET ``url`` politely and safely.

        Args:
            expect: ``image`` sniffs the body and refuses non-images;
                ``document`` (pages, sitemaps, feeds) takes any type.
            conditional: send validators from the cache; a 304 returns
                ``not_modified=True`` without a body.
            max_bytes: byte cap (default: ``max_bytes`` for images,
                ``DOCUMENT_MAX_BYTES`` for documents).
            robots: honour robots.txt (when ``respect_robots`` is on); False for a
                URL a person asked for explicitly rather than one a crawl found.

        Raises:
            FetchError: bad URL, refused address (:class:`AddressRefused`), robots.txt
                (:class:`RobotsDisallowed`), error status after retries
                (:class:`HTTPStatusError`), :class:`FetchTimeout`, an unknown host
                (:class:`~monitor.errors.HostNotFound`, not retried),
                :class:`TooManyRedirects`, not an image
                (:class:`~monitor.errors.NotAnImage`) or a network failure.
            InputTooLarge: the body exceeds the byte cap.
        """
        check_url_shape(url)
        cap = max_bytes or (self.max_bytes if expect == "image"
                            else min(self.max_bytes, DOCUMENT_MAX_BYTES))
        headers: dict[str, str] = {}
        cached = self.cache.get(url) if conditional and self.cache else None
        if cached:
            if cached.etag:
                headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                headers["If-Modified-Since"] = cached.last_modified
        s = self.settings
        for attempt in range(s.retries + 1):
            try:
                result = self._follow(url, headers, expect, cap, robots=robots)
            except _Retry as r:
                if attempt >= s.retries:
                    if not s.retries:
                        raise r.error from None
                    raise type(r.error)(*_args(r.error, f" (gave up after {s.retries} "
                                                        f"retries)")) from None
                wait = r.wait if r.wait is not None else s.backoff * 2 ** attempt
                self.sleep(min(max(wait, 0.0), s.backoff_max))
                continue
            if result.status == 304 and cached:
                return FetchResult(url, result.final_url, 304, result.headers, b"",
                                   not_modified=True, cached_sha256=cached.sha256)
            self._remember(url, result)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    # -- internals ----------------------------------------------------------------------
    def _remember(self, url: str, result: FetchResult) -> None:
        etag, lm = result.headers.get("etag"), result.headers.get("last-modified")
        if self.cache is not None and (etag or lm):
            self.cache.put(url, Validators(etag, lm, result.sha256, result.status))

    def _follow(self, url: str, headers: dict[str, str], expect: Expect | None, cap: int,
                robots: bool, truncate: bool = False) -> FetchResult:
        """Follow redirects; raises _Retry for retryable outcomes, FetchError otherwise."""
        current = url
        for _ in range(self.settings.max_redirects + 1):
            check_url_shape(current)
            if robots and not self.allowed(current):
                raise RobotsDisallowed(f"robots.txt of {origin(current)} disallows {current} "
                                       f"for user agent {self.settings.user_agent!r}")
            result = self._once(url, current, headers, expect, cap, truncate)
            if result.status in REDIRECT_STATUSES and "location" in result.headers:
                current = urljoin(current, result.headers["location"])
                continue
            if result.status in RETRY_STATUSES:
                raise _Retry(HTTPStatusError(f"GET {current}: HTTP {result.status}",
                                             result.status),
                             retry_after(result.headers.get("retry-after")))
            # ``headers`` holds only validators: a 304 is an answer only to them
            if result.status >= 300 and not (result.status == 304 and headers):
                raise HTTPStatusError(f"GET {current}: HTTP {result.status}", result.status)
            return result
        raise TooManyRedirects(f"GET {url}: more than {self.settings.max_redirects} redirects")

    def _once(self, url: str, current: str, headers: dict[str, str], expect: Expect | None,
              cap: int, truncate: bool) -> FetchResult:
        s = self.settings
        host = urlsplit(current).hostname or ""
        with self.limiter.slot(host):
            deadline = time.monotonic() + s.timeout
            timeout = httpx.Timeout(s.timeout, connect=min(s.connect_timeout, s.timeout))
            try:
                with self._client.stream("GET", current, headers=headers,
                                         timeout=timeout) as resp:
                    hdrs = {k.lower(): v for k, v in resp.headers.items()}
                    if not 200 <= resp.status_code < 300:
                        return FetchResult(url, current, resp.status_code, hdrs, b"")
                    body = self._read(resp, current, hdrs, expect, cap, truncate, deadline)
                    return FetchResult(url, current, resp.status_code, hdrs, body)
            except httpx.TimeoutException as exc:
                raise _Retry(FetchTimeout(f"GET {current}: timed out ({type(exc).__name__}, "
                                          f"limit {s.timeout:g} s)"), None) from exc
            except httpx.TransportError as exc:
                if _host_unknown(exc):  # DNS says no such name: final, not retried
                    raise HostNotFound(f"GET {current}: the host {host} does not resolve "
                                       f"({exc})") from exc
                raise _Retry(FetchError(f"GET {current}: {type(exc).__name__}: {exc}"),
                             None) from exc

    def _read(self, resp: httpx.Response, url: str, hdrs: dict[str, str],
              expect: Expect | None, cap: int, truncate: bool, deadline: float) -> bytes:
        declared = hdrs.get("content-length", "")
        if declared.isdigit() and int(declared) > cap and not truncate:
            raise InputTooLarge(f"{url}: Content-Length {declared} bytes; the limit is {cap}")
        body = bytearray()
        sniffed = expect != "image"
        for chunk in resp.iter_bytes():
            body += chunk
            if not sniffed and len(body) >= SNIFF_BYTES:
                check_image_body(url, hdrs.get("content-type", ""), bytes(body[:SNIFF_BYTES]))
                sniffed = True
            if len(body) > cap:
                if truncate:
                    return bytes(body[:cap])
                raise InputTooLarge(f"{url}: body exceeds {cap} bytes")
            if time.monotonic() > deadline:
                raise FetchTimeout(f"GET {url}: body not complete within "
                                   f"{self.settings.timeout:g} s")
        if not sniffed and body:
            check_image_body(url, hdrs.get("content-type", ""), bytes(body))
        return bytes(body)

    def _fetch_robots(self, robots_url: str) -> tuple[int, str]:
        """``(status, text)`` of a robots.txt; status 0 for a network failure.

        At most 500 KiB are read (RFC 9309 §2.5); up to ``max_redirects`` redirects are
        followed. A host refused by the SSRF guard raises :class:`AddressRefused`.
        """
        try:
            res = self._follow(robots_url, {}, None, 512_000, robots=False, truncate=True)
        except _Retry as r:
            return getattr(r.error, "status", 0), ""
        except HTTPStatusError as exc:
            return exc.status, ""
        except (AddressRefused, HostNotFound):
            raise  # the host itself is refused or unknown: say so, not "robots.txt …"
        except FetchError:
            return 0, ""
        return res.status, res.body.decode("utf-8", errors="replace")


def _host_unknown(exc: BaseException) -> bool:
    """True when ``exc`` was caused by a DNS answer that the name does not exist
    (``EAI_NONAME``/``EAI_NODATA``; a temporary failure, ``EAI_AGAIN``, is retried)."""
    final = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.errno in final:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _args(error: FetchError, suffix: str) -> tuple:
    if isinstance(error, HTTPStatusError):
        return (f"{error}{suffix}", error.status)
    return (f"{error}{suffix}",)
