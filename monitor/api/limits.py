"""Concurrent-request limits, applied before routing, authentication or the body.

:class:`ConcurrencyLimit` is a pure ASGI middleware counting the HTTP requests being
handled, in all and per client address. A request over either limit is answered at
once with 429 and ``Retry-After`` through the one error handler
(:func:`monitor.api.errors.monitor_error`), before a byte of its body is read, and with
``Connection: close`` so the unread body is dropped with the connection rather than
read. Limits: ``server.max_concurrent_requests`` and ``server.max_concurrent_per_client``.

* **Client**: the peer address uvicorn puts in the ASGI scope (after its
  ``--forwarded-allow-ips`` handling, which trusts ``X-Forwarded-For`` from loopback
  only); IPv6 clients count per /64, the block one host is normally given, so rotating
  addresses inside it gains nothing. Behind a reverse proxy on another address every
  client shares that address: raise the per-client limit or limit at the proxy.
* **Probes**: ``/healthz`` and ``/metrics`` are outside the total (a saturated daemon
  still answers its liveness probe and scrapes, so it is not restarted for being busy)
  but inside the per-client limit, so a flood of them from one address is refused too.
  The dashboard and every ``/v1`` route count in both.
* One event loop serves every request (uvicorn), so the counters need no lock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from monitor.api.errors import monitor_error
from monitor.errors import TooManyRequests

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROBES = frozenset({"/healthz", "/metrics"})
"""Paths outside the total limit (still inside the per-client one)."""

IPV6_CLIENT_PREFIX = 64
"""IPv6 addresses sharing this many leading bits count as one client (a host's /64)."""


def client_key(scope: Scope) -> str:
    """The client a request counts against: the peer address of ``scope`` (``str``), IPv6
    reduced to its /64 network; ``""`` when the server gives no address (a Unix socket)."""
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(addr)


class ConcurrencyLimit:
    """Pure ASGI middleware: at most ``total`` HTTP requests handled at once, and at most
    ``per_client`` from one client (:func:`client_key`); more get 429 with ``Retry-After``
    (:class:`~monitor.errors.TooManyRequests`) without their body being read.

    Args:
        app: the ASGI application wrapped.
        total: requests handled at once in all (``server.max_concurrent_requests``).
        per_client: requests handled at once per client (``server.max_concurrent_per_client``).
        refused: called with ``"total"`` or ``"client"`` for each refusal (a metrics hook).

    Attributes:
        active: requests being handled now, probes excluded.
        by_client: requests being handled now per client key (probes included).
    """

    def __init__(self, app: ASGIApp, total: int, per_client: int,
                 refused: Callable[[str], None] | None = None) -> None:
        self.app, self.total, self.per_client = app, total, per_client
        self.refused = refused
        self.active = 0
        self.by_client: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key, probe = client_key(scope), scope.get("path") in PROBES
        if not probe and self.active >= self.total:
            await self._refuse("total", f"too many requests at once: {self.total} in all",
                               scope, receive, send)
            return
        if self.by_client.get(key, 0) >= self.per_client:
            await self._refuse("client", f"too many requests at once from one client: "
                               f"{self.per_client}", scope, receive, send)
            return
        self.active += not probe
        self.by_client[key] = self.by_client.get(key, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= not probe
            left = self.by_client[key] - 1
            if left:
                self.by_client[key] = left
            else:
                del self.by_client[key]

    async def _refuse(self, limit: str, message: str, scope: Scope, receive: Receive,
                      send: Send) -> None:
        if self.refused is not None:
            self.refused(limit)
        response = await monitor_error(None, TooManyRequests(message))  # type: ignore[arg-type]
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
