"""Shared pieces of discovery: what is found, what went wrong, URL helpers and the run cap."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import urldefrag, urljoin, urlsplit

from monitor.types import PageContext

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".avif", ".bmp",
                            ".tif", ".tiff", ".heic", ".heif", ".jxl", ".ico"})
"""Path endings taken as images without fetching them."""

SKIPPED_SUFFIXES = frozenset({".svg", ".svgz"})
"""Vector images: not photographs, never matched; not queued."""


@dataclass(frozen=True)
class Discovered:
    """One candidate image found by a source.

    Attributes:
        location: an http(s) URL, or a file path for ``folder`` sources.
        page_url: the page, feed entry or sitemap ``<url>`` it was found on (None
            for files and for image URLs listed directly).
        context: how the image appears there (page title, alt text, caption), when
            known.
    """

    location: str
    page_url: str | None = None
    context: PageContext | None = None


@dataclass
class CrawlLog:
    """What discovery could not do, so nothing is dropped silently.

    ``skipped`` holds deliberate omissions (robots.txt, limits, non-HTML links);
    ``errors`` holds failures (network, status, refused address, bad XML).
    Each entry is ``(url_or_path, reason)``.
    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    pages: int = 0
    unchanged_files: int = 0

    def skip(self, where: str, why: str) -> None:
        """Record a deliberate omission."""
        self.skipped.append((where, why))

    def error(self, where: str, why: object) -> None:
        """Record a failure (an exception or a message)."""
        self.errors.append((where, str(why)))

    def summary(self, limit: int = 5) -> str:
        """One line for the scan record: counts and the first few reasons."""
        parts = [f"{self.pages} page(s) fetched"]
        if self.unchanged_files:
            parts.append(f"{self.unchanged_files} unchanged file(s) not re-checked")
        for name, entries in (("skipped", self.skipped), ("discovery error(s)", self.errors)):
            if entries:
                shown = "; ".join(f"{w} ({why})" for w, why in entries[:limit])
                more = f"; +{len(entries) - limit} more" if len(entries) > limit else ""
                parts.append(f"{len(entries)} {name}: {shown}{more}")
        return "; ".join(parts)


class Collector:
    """De-duplicates image URLs within one run and stops at ``max_images``."""

    def __init__(self, max_images: int, log: CrawlLog) -> None:
        self.max_images, self.log = max_images, log
        self.seen: set[str] = set()
        self._capped = False

    @property
    def full(self) -> bool:
        """True once ``max_images`` candidates were accepted."""
        return len(self.seen) >= self.max_images

    def add(self, url: str, page_url: str | None,
            context: PageContext | None = None) -> Discovered | None:
        """The :class:`Discovered` for ``url`` (found on ``page_url``, appearing there as
        ``context``) if it is new, usable and under the cap."""
        url = clean_url(url)
        if not url or url in self.seen or is_skipped_image(url):
            return None
        if self.full:
            if not self._capped:
                self.log.skip(url, f"max_images={self.max_images} reached; later images "
                              "not queued")
                self._capped = True
            return None
        self.seen.add(url)
        return Discovered(url, page_url, context)

    def add_file(self, path: str) -> Discovered | None:
        """The :class:`Discovered` for a file path if new and under the cap."""
        if path in self.seen:
            return None
        if self.full:
            if not self._capped:
                self.log.skip(path, f"max_images={self.max_images} reached; later files "
                              "not queued")
                self._capped = True
            return None
        self.seen.add(path)
        return Discovered(path)


def clean_url(url: str, base: str | None = None) -> str | None:
    """``url`` made absolute against ``base``, without its fragment; None unless http(s)."""
    url = (url or "").strip()
    if not url or url.startswith(("data:", "javascript:", "mailto:", "tel:", "blob:")):
        return None
    if base:
        url = urljoin(base, url)
    url = urldefrag(url)[0]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url


def suffix(url: str) -> str:
    """Lower-case file extension of the URL's path ('' when none)."""
    return PurePosixPath(urlsplit(url).path).suffix.lower()


def looks_like_image(url: str) -> bool:
    """True when the URL path ends in a raster-image extension."""
    return suffix(url) in IMAGE_SUFFIXES


def is_skipped_image(url: str) -> bool:
    """True for vector images (SVG), which are not queued."""
    return suffix(url) in SKIPPED_SUFFIXES


def site_of(url: str) -> tuple[str, int | None]:
    """``(host without a leading 'www.', explicit non-default port or None)``.

    Two URLs are same-site when these agree, so ``http://`` and ``https://`` of
    one host are one site. Without a public-suffix list, sub-domains other than
    ``www`` count as other sites.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    port = parts.port if parts.port not in (None, 80, 443) else None
    return host, port
