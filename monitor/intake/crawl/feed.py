"""RSS 0.9x/2.0, RSS 1.0 and Atom feeds (``feedparser``).

feedparser normalises every feed dialect and Media RSS into one structure and
survives malformed feeds; it is given the fetched bytes (never a URL, so it
does no fetching of its own). Per entry, found: enclosures whose type is
``image/*`` (or untyped with an image extension), ``media:content`` with
``medium="image"`` or an image type, ``media:thumbnail``, and ``<img>`` /
``srcset`` in the summary or content HTML. ``page_url`` is the entry's link; the
entry's title is kept as the page title of its images' context.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import feedparser

from monitor.intake.crawl.base import (
    Collector,
    CrawlLog,
    Discovered,
    clean_url,
    looks_like_image,
)
from monitor.intake.crawl.html import images_in_fragment
from monitor.intake.crawl.pages import fetch_page
from monitor.intake.fetcher import Fetcher
from monitor.types import PageContext


def _is_image(url: str, mime: str | None, medium: str | None = None) -> bool:
    if medium:
        return medium.lower() == "image"
    if mime:
        return mime.lower().startswith("image/")
    return looks_like_image(url)


def entry_images(entry: dict, base: str) -> list[str]:
    """Image URLs of one feedparser entry, resolved against ``base`` (the feed URL)."""
    found: list[str] = []
    for enc in entry.get("enclosures", []):
        href = enc.get("href") or enc.get("url") or ""
        if href and _is_image(href, enc.get("type")):
            found.append(href)
    for media in entry.get("media_content", []):
        url = media.get("url") or ""
        if url and _is_image(url, media.get("type"), media.get("medium")):
            found.append(url)
    found += [t["url"] for t in entry.get("media_thumbnail", []) if t.get("url")]
    fragments = [c.get("value", "") for c in entry.get("content", [])]
    fragments.append(entry.get("summary", ""))
    for html in fragments:
        found += images_in_fragment(html or "", base)
    return [u for u in (clean_url(u, base) for u in found) if u]


def feed_images(fetcher: Fetcher, location: str, collector: Collector,
                log: CrawlLog) -> Iterator[Discovered]:
    """Yield the images of every entry of the feed at ``location``."""
    result = fetch_page(fetcher, location, log)
    if result is None:
        return
    parsed = feedparser.parse(
        io.BytesIO(result.body), sanitize_html=False, resolve_relative_uris=True,
        response_headers={"content-location": result.final_url,
                          "content-type": result.headers.get("content-type", "")})
    if parsed.bozo and not parsed.entries:
        log.error(location, f"not a usable feed: {parsed.get('bozo_exception')}")
        return
    for entry in parsed.entries:
        page = clean_url(entry.get("link", ""), result.final_url)
        context = PageContext.of(page_title=entry.get("title"))
        for url in entry_images(entry, result.final_url):
            if found := collector.add(url, page, context):
                yield found
