"""Turn inputs (files, folders, URLs) into bytes, safely.

Folders are walked recursively in sorted order, skipping hidden entries. URLs
go through :class:`monitor.intake.fetcher.Fetcher`; this module holds the two pure
safety checks it relies on:

* :class:`AddressPolicy`: which IP addresses may be connected to (the SSRF
  guard). It runs on the DNS answer actually used for every connection, so it
  covers every redirect hop and DNS rebinding. Link-local (169.254.0.0/16,
  fe80::/10), cloud metadata, multicast, unspecified and reserved addresses are
  *never* allowed; loopback and private (RFC 1918, fc00::/7, CGNAT) addresses
  only with ``allow_private`` or when listed in ``allow_networks``.
* :func:`check_image_body`: content-type and magic-byte sniffing, so an HTML
  page served as ``image/jpeg`` is refused with a clear error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from monitor.errors import AddressRefused, FetchError, InputTooLarge, NotAnImage

USER_AGENT = "monitor/0.1 (+https://github.com/monitor-images/monitor; image copy detection)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
    "169.254.170.2",     # AWS ECS task metadata
    "100.100.100.200",   # Alibaba Cloud
    "fd00:ec2::254",     # AWS IMDS over IPv6
))
"""Cloud instance-metadata endpoints: refused whatever the settings say."""

SNIFF_BYTES = 1445
"""Bytes examined for magic numbers (the WHATWG MIME Sniffing 'resource header' size)."""


@dataclass(frozen=True)
class Input:
    """One thing to check: a local file path or an http(s) URL."""

    location: str
    is_url: bool


def is_url(text: str) -> bool:
    """True for ``http://`` and ``https://`` locations."""
    return urlsplit(text).scheme in ("http", "https")


def expand(items: list[str]) -> Iterator[Input]:
    """Yield inputs: URLs as given, files as given, folders walked recursively (sorted).

    A path that does not exist is yielded anyway, so reading it records the error.
    """
    for item in items:
        if is_url(item):
            yield Input(item, True)
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            yield from (Input(str(p), False) for p in walk(path))
        else:
            yield Input(str(path), False)


def walk(folder: Path) -> Iterator[Path]:
    """Files under ``folder``, recursively, sorted, skipping hidden files and folders."""
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if p.is_file() and not any(part.startswith(".") for part in rel):
            yield p


def read_file(path: str, max_bytes: int) -> bytes:
    """The file's bytes.

    Raises:
        InputTooLarge: larger than ``max_bytes``.
        FetchError: missing, a folder, or unreadable.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise InputTooLarge(f"{path}: {size} bytes; the limit is {max_bytes}")
        return p.read_bytes()
    except FileNotFoundError as exc:
        raise FetchError(f"no such file: {path}") from exc
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from exc


# -- SSRF guard --------------------------------------------------------------------------------
def classify(addr: IPAddress) -> tuple[str, str]:
    """``(category, why)`` of an address: category is ``public``, ``private`` or ``forbidden``.

    IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are judged as the IPv4 address.
    """
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
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
        """A policy from settings values (CIDR strings)."""
        return cls(allow_private, tuple(ipaddress.ip_network(n) for n in networks))

    def check(self, host: str, addr: IPAddress) -> None:
        """Raise :class:`AddressRefused` unless ``addr`` (an answer for ``host``) is allowed."""
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
    """Raise :class:`FetchError` unless ``url`` is http(s) with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"refused {url}: only http(s) URLs with a host are fetched")


# -- content sniffing ----------------------------------------------------------------------
_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"),
          (b"GIF89a", "gif"), (b"BM", "bmp"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"),
          (b"\x00\x00\x01\x00", "ico"), (b"\xff\x0a", "jxl"), (b"\x00\x00\x00\x0cJXL ", "jxl"))
_FTYP_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1")
_HTML_TAGS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<h1",
              b"<div", b"<font", b"<table", b"<a", b"<style", b"<title", b"<b", b"<br", b"<p",
              b"<!--")


def sniff(head: bytes) -> str | None:
    """What the first bytes say: an image format, ``svg``, ``html``, or None (unknown).

    Patterns follow the WHATWG MIME Sniffing standard (image and HTML signatures).
    """
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in _FTYP_BRANDS:
        return "heif"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n\x0c").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "svg"
    for tag in _HTML_TAGS:
        if text.startswith(tag) and text[len(tag):len(tag) + 1] in (b" ", b">", b"\t", b"\n"):
            return "html"
    return None


def check_image_body(url: str, content_type: str, head: bytes) -> None:
    """Refuse bodies that are clearly not images, whatever the server claims.

    Known image magic bytes win over the header (servers mislabel images). An
    HTML body is refused even when labelled ``image/*``. Unknown bytes pass when
    the label is ``image/*`` or generic, so the decoder can give its own verdict.

    Raises:
        NotAnImage: with the claimed content type and what the bytes are.
    """
    kind = sniff(head)
    ctype = content_type.split(";")[0].strip().lower()
    label = ctype or "no content type"
    if kind == "html":
        if ctype.startswith("image/"):
            raise NotAnImage(f"{url}: served as {label} but the body is an HTML page")
        raise NotAnImage(f"{url}: an HTML page ({label}), not an image")
    if kind is not None:
        return
    if ctype.startswith(("text/", "application/json", "application/xml", "application/xhtml")):
        raise NotAnImage(f"{url}: content type {label} is not an image")


# -- one-off fetch (kept for callers of the old API) ------------------------------------
def fetch(url: str, max_bytes: int, *, timeout: float = 20.0, max_redirects: int = 5,
          allow_private: bool = False) -> tuple[bytes, int, dict[str, str]]:
    """GET one image URL with a throw-away :class:`~monitor.intake.fetcher.Fetcher`; returns
    ``(body, status, headers)``. No robots.txt, retries or per-host delay: the
    caller asked for this exact URL. Prefer ``Workspace.fetcher``.

    Raises:
        FetchError: refused address, network failure, too many redirects or non-2xx.
        InputTooLarge: the body exceeds ``max_bytes`` (stops reading at the cap).
    """
    from monitor.config.daemon import FetchSettings
    from monitor.intake.fetcher import Fetcher

    settings = FetchSettings(user_agent=USER_AGENT, timeout=timeout,
                             connect_timeout=min(10.0, timeout), max_redirects=max_redirects,
                             retries=0, per_host_delay=0.0, respect_robots=False,
                             allow_private=allow_private)
    with Fetcher(settings, max_bytes=max_bytes) as fetcher:
        result = fetcher.fetch(url)
    return result.body, result.status, result.headers
