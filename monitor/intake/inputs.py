"""Turn inputs (files, folders, URLs) into bytes, safely.

Folders are walked recursively in sorted order, skipping hidden entries. URLs go
through :class:`monitor.intake.fetcher.Fetcher`, whose safety checks live beside it:
:mod:`monitor.intake.address_policy` (the SSRF guard) and
:mod:`monitor.intake.content_check` (an HTML page served as ``image/jpeg`` is refused).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from monitor.config.daemon import FetchSettings
from monitor.errors import FetchError, InputTooLarge
from monitor.intake.fetcher import Fetcher

USER_AGENT = "monitor/0.1 (+https://github.com/monitor-images/monitor; image copy detection)"
"""User agent of :func:`fetch` (configured fetches use ``fetch.user_agent``)."""


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


# -- one-off fetch ---------------------------------------------------------------------
def fetch(url: str, max_bytes: int, *, timeout: float = 20.0, max_redirects: int = 5,
          allow_private: bool = False) -> tuple[bytes, int, dict[str, str]]:
    """GET one image URL with a throw-away :class:`~monitor.intake.fetcher.Fetcher`; returns
    ``(body, status, headers)``. No robots.txt, retries or per-host delay: the
    caller asked for this exact URL. Prefer ``Workspace.fetcher``.

    Raises:
        FetchError: refused address, network failure, too many redirects or non-2xx.
        InputTooLarge: the body exceeds ``max_bytes`` (stops reading at the cap).
    """
    settings = FetchSettings(user_agent=USER_AGENT, timeout=timeout,
                             connect_timeout=min(10.0, timeout), max_redirects=max_redirects,
                             retries=0, per_host_delay=0.0, respect_robots=False,
                             allow_private=allow_private)
    with Fetcher(settings, max_bytes=max_bytes) as fetcher:
        result = fetcher.fetch(url)
    return result.body, result.status, result.headers
