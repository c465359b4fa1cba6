"""Sitemaps (sitemaps.org protocol 0.9) and Google image sitemaps.

Parsed with ``defusedxml`` (entity expansion and external entities refused, so
a hostile sitemap cannot blow up memory or read local files); gzip-compressed
sitemaps (``.xml.gz``) are inflated with a size cap. A ``<sitemapindex>`` is
followed recursively (at most :data:`MAX_LEVELS` deep and ``max_pages``
sitemaps); a ``<urlset>`` gives page URLs (``<url><loc>``) and their images
(``<image:image><image:loc>``, with ``image:title`` and ``image:caption`` kept as the
image's context when present). The pages are then crawled like a ``page``
source at depth 0 (same site as the sitemap only), up to ``max_pages``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from monitor.intake.crawl.base import (
    Collector,
    CrawlLog,
    Discovered,
    clean_url,
    site_of,
)
from monitor.intake.crawl.pages import crawl_pages, fetch_page
from monitor.intake.fetcher import DOCUMENT_MAX_BYTES, Fetcher
from monitor.types import PageContext

MAX_LEVELS = 3
"""Sitemap-index nesting followed (the protocol allows one level; be lenient)."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _children(el: Element, name: str) -> Iterator[Element]:
    return (c for c in el if _local(c.tag) == name)


def _text(el: Element, name: str) -> str | None:
    for c in _children(el, name):
        return (c.text or "").strip() or None
    return None


def inflate(body: bytes, cap: int = DOCUMENT_MAX_BYTES) -> bytes:
    """Gunzip ``body`` when it is gzip, reading at most ``cap`` bytes out.

    Raises:
        ValueError: corrupt gzip or more than ``cap`` bytes once inflated.
    """
    if not body.startswith(b"\x1f\x8b"):
        return body
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, cap + 1)
    except zlib.error as exc:
        raise ValueError(f"corrupt gzip: {exc}") from exc
    if len(out) > cap:
        raise ValueError(f"inflates to more than {cap} bytes")
    return out


SitemapImage = tuple[str, PageContext | None]
"""An image of an image sitemap: its URL and its ``image:title`` / ``image:caption``."""


def parse_sitemap(body: bytes) -> tuple[str, list[str], list[tuple[str, list[SitemapImage]]]]:
    """``(kind, child_sitemaps, [(page_url, [(image_url, context)])])`` of one sitemap
    document.

    ``kind`` is ``index`` or ``urlset``.

    Raises:
        ValueError: not XML, a refused construct (DTD entities), or another root element.
    """
    try:
        root = fromstring(inflate(body))
    except (ParseError, DefusedXmlException) as exc:
        raise ValueError(f"not a usable sitemap: {type(exc).__name__}: {exc}") from exc
    kind = _local(root.tag)
    if kind == "sitemapindex":
        return "index", [u for s in _children(root, "sitemap") if (u := _text(s, "loc"))], []
    if kind != "urlset":
        raise ValueError(f"root element is <{kind}>, not <urlset> or <sitemapindex>")
    pages = []
    for url in _children(root, "url"):
        loc = _text(url, "loc")
        images = [(u, PageContext.of(image_title=_text(im, "title"),
                                     caption=_text(im, "caption")))
                  for im in _children(url, "image") if (u := _text(im, "loc"))]
        if loc or images:
            pages.append((loc or "", images))
    return "urlset", [], pages


def sitemap_images(fetcher: Fetcher, location: str, max_pages: int, collector: Collector,
                   log: CrawlLog) -> Iterator[Discovered]:
    """Yield images listed in the sitemap tree at ``location``, then those on its pages."""
    home = site_of(location)
    todo: list[tuple[str, int]] = [(location, 0)]
    seen_maps: set[str] = {location}
    pages: list[str] = []
    fetched = 0
    while todo and not collector.full:
        url, level = todo.pop(0)
        if fetched >= max_pages:
            log.skip(url, f"max_pages={max_pages} reached; sitemap not fetched")
            break
        result = fetch_page(fetcher, url, log)
        if result is None:
            continue
        fetched += 1
        try:
            kind, children, entries = parse_sitemap(result.body)
        except ValueError as exc:
            log.error(url, exc)
            continue
        for child in children:
            child = clean_url(child, result.final_url)
            if child and child not in seen_maps and level + 1 <= MAX_LEVELS:
                seen_maps.add(child)
                todo.append((child, level + 1))
        for page_url, images in entries:
            page = clean_url(page_url, result.final_url)
            for img, context in images:
                if found := collector.add(clean_url(img, result.final_url) or "", page,
                                          context):
                    yield found
            if page and site_of(page) == home:
                pages.append(page)
            elif page:
                log.skip(page, "page on another site than the sitemap; not crawled")
    budget = max(0, max_pages - fetched)
    if pages and budget:
        yield from crawl_pages(fetcher, pages, 0, budget, collector, log)
    elif pages:
        log.skip(pages[0], f"max_pages={max_pages} used by sitemaps; {len(pages)} page(s) "
                 "not crawled")
