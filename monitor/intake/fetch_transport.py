"""Network guard for :class:`monitor.intake.fetcher.Fetcher`: an httpx transport that resolves
each host itself and connects only to addresses the SSRF policy
(:class:`monitor.intake.address_policy.AddressPolicy`) allows, on the DNS answer actually used."""

from __future__ import annotations

import socket

import httpcore
import httpx

from monitor.intake.address_policy import AddressPolicy


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself and connects only to addresses the policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options=None):
        import ipaddress

        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addrs = list(dict.fromkeys(ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos))
        for addr in addrs:
            self.policy.check(host, addr)
        last: Exception | None = None
        for addr in addrs:
            try:
                return super().connect_tcp(str(addr), port, timeout, local_address,
                                           socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host}")


def _transport(policy: AddressPolicy, limits: httpx.Limits) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(trust_env=False, limits=limits)
    # httpx has no public hook for the network backend; swap in a pool that has ours.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, network_backend=_GuardedBackend(policy))
    return transport
