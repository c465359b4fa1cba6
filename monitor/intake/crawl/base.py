"""Shared pieces of discovery: what is found, what went wrong, URL helpers and the run cap."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePosixPath
from urllib.parse import urldefrag, urljoin, urlsplit

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".avif", ".bmp",
                            ".tif", ".tiff", ".heic", ".heif", ".jxl", ".ico"})
"""Path endings taken as images without fetching them."""

SKIPPED_SUFFIXES = frozenset({".svg", ".svgz"})
"""Vector images: not photographs, never matched; not queued."""


CONTEXT_CAP = 500
"""Longest page-context string kept (characters); longer ones are cut with an ellipsis."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_SPACE = re.compile(r"\s+")


def clean_text(value: object, cap: int = CONTEXT_CAP) -> str | None:
    """``value`` as one line of plain text: control and bidi-override characters removed,
    runs of white space made one space, at most ``cap`` characters (cut with ``…``);
    None when it is not a string or nothing is left."""
    if not isinstance(value, str):
        return None
    text = _SPACE.sub(" ", _CONTROL.sub("", value.replace("\t", " "))).strip()
    if len(text) > cap:
        text = text[:cap - 1].rstrip() + "…"
    return text or None


@dataclass(frozen=True)
class PageContext:
    """How an image appears where it was found, as the page shows it to a reader.

    Every field is cleaned plain text (:func:`clean_text`) or None; escaping is left to
    whatever displays it.

    Attributes:
        page_title: the page's ``<title>`` (a feed entry's title; a sitemap's none).
        alt: the ``img`` element's ``alt`` text.
        image_title: the ``img`` element's ``title`` attribute (an image sitemap's
            ``image:title``).
        caption: the enclosing ``<figure>``'s ``<figcaption>`` (an image sitemap's
            ``image:caption``).
    """

    page_title: str | None = None
    alt: str | None = None
    image_title: str | None = None
    caption: str | None = None

    @classmethod
    def of(cls, **values: object) -> PageContext | None:
        """A context of the given fields, each cleaned; None when all are empty."""
        ctx = cls(**{k: clean_text(v) for k, v in values.items()})
        return ctx if any(asdict(ctx).values()) else None

    @classmethod
    def from_dict(cls, data: object) -> PageContext | None:
        """The context held in ``data`` (job metadata, a stored row): its known string
        keys, cleaned; anything else is ignored. None when nothing usable is there."""
        if not isinstance(data, Mapping):
            return None
        return cls.of(**{f.name: data.get(f.name) for f in fields(cls)})

    def as_dict(self) -> dict[str, str]:
        """The fields that are set, as ``{name: text}`` (what is stored as JSON)."""
        return {k: v for k, v in asdict(self).items() if v}

    def filled(self, other: PageContext | None) -> PageContext:
        """This context with its empty fields taken from ``other``."""
        if other is None:
            return self
        mine, theirs = asdict(self), asdict(other)
        return PageContext(**{k: mine[k] or theirs[k] for k in mine})


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
