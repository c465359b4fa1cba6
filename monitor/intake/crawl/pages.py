"""Breadth-first crawl of HTML pages: images on each page, same-site links to a depth.

Depth 0 is the start pages themselves; depth 1 adds the pages they link to,
and so on. Only links to the same site as a start page (see
:func:`~monitor.intake.crawl.base.site_of`) are followed; images may live anywhere
(CDNs). At most ``max_pages`` pages are fetched. A page refused by robots.txt
or the SSRF guard, or that fails, is logged and skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from monitor.errors import MonitorError
from monitor.intake.crawl.base import Collector, CrawlLog, Discovered, clean_url, site_of
from monitor.intake.crawl.html import parse_html
from monitor.intake.fetcher import Fetcher, FetchResult, RobotsDisallowed

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def charset_of(result: FetchResult) -> str | None:
    """The ``charset`` parameter of the Content-Type header, if any."""
    for param in result.headers.get("content-type", "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def fetch_page(fetcher: Fetcher, url: str, log: CrawlLog) -> FetchResult | None:
    """Fetch one document; log and return None on robots.txt refusal or failure."""
    try:
        result = fetcher.fetch(url, expect="document")
    except RobotsDisallowed as exc:
        log.skip(url, str(exc))
        return None
    except MonitorError as exc:
        log.error(url, f"{exc.code}: {exc}")
        return None
    log.pages += 1
    return result


def crawl_pages(fetcher: Fetcher, starts: Iterable[str], depth: int, max_pages: int,
                collector: Collector, log: CrawlLog,
                image_responses: bool = False) -> Iterator[Discovered]:
    """Yield images found on ``starts`` and on same-site pages up to ``depth`` links away.

    Args:
        image_responses: a start URL answering with ``image/*`` is itself a
            candidate (kind ``urls``: image URLs without an image extension).
    """
    queue: deque[tuple[str, int]] = deque()
    seen: set[str] = set()
    sites: set[tuple[str, int | None]] = set()
    for url in starts:
        url = clean_url(url)
        if url and url not in seen:
            seen.add(url)
            sites.add(site_of(url))
            queue.append((url, 0))
    fetched = 0
    while queue and not collector.full:
        url, level = queue.popleft()
        if fetched >= max_pages:
            log.skip(url, f"max_pages={max_pages} reached; {len(queue) + 1} page(s) not fetched")
            return
        result = fetch_page(fetcher, url, log)
        if result is None:
            continue
        fetched += 1
        ctype = result.content_type
        if image_responses and level == 0 and ctype.startswith("image/"):
            if found := collector.add(url, None):
                yield found
            continue
        if ctype not in HTML_TYPES:
            log.skip(url, f"not HTML ({ctype or 'no content type'})")
            continue
        if level == 0:
            sites.add(site_of(result.final_url))
        page = parse_html(result.body, result.final_url, charset_of(result))
        for img in page.images:
            if found := collector.add(img, result.final_url, page.contexts.get(img)):
                yield found
        if level >= depth:
            continue
        for link in page.links:
            if link not in seen and site_of(link) in sites:
                seen.add(link)
                queue.append((link, level + 1))
