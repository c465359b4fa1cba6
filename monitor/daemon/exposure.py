"""What ``monitor serve`` refuses or warns about before it listens (issue 19, safe defaults).

* Unsigned ``/v1`` routes (``server.require_signature = false``) let anyone who can
  connect submit, search, change the gallery and review violations: refused unless the
  daemon listens on a loopback address only.
* Listening beyond loopback over plain HTTP exposes signed requests, the dashboard token
  and evidence to the network: warned at start, with the two ways out (a TLS-terminating
  proxy in front, or ``--ssl-certfile``/``--ssl-keyfile``, which uvicorn serves itself).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from monitor.config import Settings
from monitor.errors import ConfigError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
"""Host names that always mean the loopback interface (RFC 6761 §6.3)."""


@dataclass(frozen=True)
class Tls:
    """Certificate chain and private key files (PEM) for uvicorn to serve HTTPS."""

    certfile: str
    keyfile: str


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or name to bind) only reaches this machine;
    ``0.0.0.0`` and ``::`` (every interface) and other names are not."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warnings(settings: Settings, host: str, tls: Tls | None) -> list[str]:
    """Warnings to log at start for listening on ``host``; raises for what is refused.

    Raises:
        ConfigError: signatures are off while ``host`` is not loopback.
    """
    server, loopback = settings.server, is_loopback(host)
    out = []
    if not server.require_signature:
        if not loopback:
            raise ConfigError(
                f"server.require_signature = false opens every /v1 route (submissions, search, "
                f"gallery changes, reviews) to anyone who reaches {host}; it is allowed only "
                "when listening on a loopback address (--host 127.0.0.1)")
        out.append("signatures are off (server.require_signature = false): every /v1 route "
                   "is open to local clients")
    if not loopback and tls is None:
        out.append(f"listening on {host} over plain HTTP: put a TLS-terminating proxy in "
                   "front (and keep this address private), or pass --ssl-certfile and "
                   "--ssl-keyfile")
    return out
