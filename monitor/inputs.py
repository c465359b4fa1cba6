"""Turn command-line inputs (files, folders, URLs) into bytes, safely.

Folders are walked recursively in sorted order, skipping hidden entries. URLs
are fetched with httpx: connect/read timeouts, a streamed byte cap, a redirect
limit, and a guard that refuses hosts resolving to private, loopback,
link-local or reserved addresses (checked on every redirect hop) unless
``allow_private`` is set.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from monitor.errors import FetchError, InputTooLarge

USER_AGENT = "monitor/0.1 (+https://github.com/monitor-images/monitor; image copy detection)"


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
            for p in sorted(path.rglob("*")):
                rel = p.relative_to(path).parts
                if p.is_file() and not any(part.startswith(".") for part in rel):
                    yield Input(str(p), False)
        else:
            yield Input(str(path), False)


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


def _check_host(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"refused {url}: only http(s) URLs with a host are fetched")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve {parts.hostname}: {exc}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global or addr.is_multicast:
            raise FetchError(f"refused {url}: {parts.hostname} resolves to non-public {addr}")


def fetch(url: str, max_bytes: int, *, timeout: float = 20.0, max_redirects: int = 5,
          allow_private: bool = False) -> tuple[bytes, int, dict[str, str]]:
    """GET ``url``; returns (body, status, headers).

    Raises:
        FetchError: refused address, network failure, too many redirects or non-2xx.
        InputTooLarge: the body exceeds ``max_bytes`` (stops reading at the cap).
    """
    import httpx

    timeouts = httpx.Timeout(timeout, connect=min(10.0, timeout))
    with httpx.Client(timeout=timeouts, follow_redirects=False,
                      headers={"User-Agent": USER_AGENT}) as client:
        for _ in range(max_redirects + 1):
            _check_host(url, allow_private)
            try:
                with client.stream("GET", url) as resp:
                    if resp.is_redirect:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status_code >= 400:
                        raise FetchError(f"GET {url}: HTTP {resp.status_code}")
                    body = bytearray()
                    for chunk in resp.iter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise InputTooLarge(f"{url}: body exceeds {max_bytes} bytes")
                    return bytes(body), resp.status_code, dict(resp.headers)
            except httpx.HTTPError as exc:
                raise FetchError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
    raise FetchError(f"GET {url}: more than {max_redirects} redirects")
