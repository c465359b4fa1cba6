"""The SSRF guard: which IP addresses a fetch may connect to, and which URLs it may ask for.

:class:`AddressPolicy` runs on the DNS answer actually used for every connection
(:mod:`monitor.intake.fetch_transport`), so it covers every redirect hop and DNS
rebinding. Link-local (169.254.0.0/16, fe80::/10), cloud metadata, multicast,
unspecified and reserved addresses are *never* allowed; loopback and private
(RFC 1918, fc00::/7, CGNAT) addresses only with ``allow_private`` or when listed in
``allow_networks``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from monitor.errors import AddressRefused, FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
    "169.254.170.2",     # AWS ECS task metadata
    "100.100.100.200",   # Alibaba Cloud
    "fd00:ec2::254",     # AWS IMDS over IPv6
))
"""Cloud instance-metadata endpoints: refused whatever the settings say."""


def classify(addr: IPAddress) -> tuple[str, str]:
    """``(category, why)`` of an address: category is ``public``, ``private`` or ``forbidden``.

    IPv6 addresses that carry an IPv4 address are judged as that IPv4 address:
    IPv4-mapped (``::ffff:a.b.c.d``, RFC 4291 §2.5.5.2), 6to4 (``2002:AABB:CCDD::/48``,
    RFC 3056), Teredo (``2001::/32``, the client address, RFC 4380) and NAT64
    (``64:ff9b::/96``, RFC 6052; ``64:ff9b:1::/48``, RFC 8215): a 6to4 address can embed
    169.254.169.254.
    """
    if isinstance(addr, ipaddress.IPv6Address):
        addr = embedded_ipv4(addr) or addr
    if addr in METADATA_ADDRESSES:
        return "forbidden", "cloud metadata"
    for test, why in ((addr.is_link_local, "link-local"), (addr.is_multicast, "multicast"),
                      (addr.is_unspecified, "unspecified")):
        if test:
            return "forbidden", why
    if addr.is_loopback:
        return "private", "loopback"
    if addr.is_reserved:
        return "forbidden", "reserved"
    if addr.is_private:
        return "private", "private"
    if not addr.is_global:
        return "private", "non-public"
    return "public", "public"


NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
"""NAT64 prefixes whose last 32 bits are an IPv4 address (RFC 6052 §2.1, RFC 8215)."""


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64),
    or None."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if any(addr in net for net in NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses a connection may go to.

    Attributes:
        allow_private: permit loopback and private ranges (never link-local,
            metadata, multicast, unspecified or reserved ones).
        allow_networks: further networks permitted even without ``allow_private``
            (e.g. ``127.0.0.0/8`` for tests); they cannot unlock forbidden addresses.
    """

    allow_private: bool = False
    allow_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def build(cls, allow_private: bool, networks: Iterable[str] = ()) -> AddressPolicy:
        """A policy from settings values (CIDR strings).

        Raises:
            ValueError: a network is not valid CIDR.
        """
        return cls(allow_private, tuple(ipaddress.ip_network(n) for n in networks))

    def check(self, host: str, addr: IPAddress) -> None:
        """Return if ``addr`` (an answer for ``host``) is allowed.

        Raises:
            AddressRefused: the address is forbidden, or private and not permitted.
        """
        category, why = classify(addr)
        if category == "public":
            return
        if category == "private" and (self.allow_private or any(
                addr in net for net in self.allow_networks if net.version == addr.version)):
            return
        hint = "" if category == "forbidden" else " (set fetch.allow_private to permit)"
        shown = getattr(addr, "ipv4_mapped", None) or addr
        raise AddressRefused(f"refused {host}: it resolves to {why} address {shown}{hint}")


def check_url_shape(url: str) -> None:
    """Return if ``url`` is http(s) with a host.

    Raises:
        FetchError: any other scheme, or no host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"refused {url}: only http(s) URLs with a host are fetched")
