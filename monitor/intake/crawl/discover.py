"""``discover``: the candidate images of one configured source, without checking them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from monitor.config.daemon import SourceSettings
from monitor.intake.crawl.base import Collector, CrawlLog, Discovered, clean_url, looks_like_image
from monitor.intake.crawl.feed import feed_images
from monitor.intake.crawl.folder import SeenFiles, folder_files
from monitor.intake.crawl.pages import crawl_pages
from monitor.intake.crawl.sitemap import sitemap_images
from monitor.intake.fetcher import Fetcher


def discover(source: SourceSettings, fetcher: Fetcher | None, log: CrawlLog | None = None, *,
             resolve: Callable[[str], Path] = Path,
             seen: SeenFiles | None = None) -> Iterator[Discovered]:
    """Yield each candidate of ``source`` once (de-duplicated by URL or path), at most
    ``source.max_images``.

    Args:
        source: the ``[[sources]]`` entry.
        fetcher: fetches pages, sitemaps and feeds (robots.txt, SSRF guard, per-host
            limits); the images themselves are not fetched here. Only ``folder``
            sources may go without one.
        log: receives what could not be done (robots.txt, failures, limits).
        resolve: turns a ``folder`` source's ``location`` into a path (the deployment's
            ``Settings.path``; default: relative to the working directory).
        seen: earlier sightings of files, so a ``folder`` source yields only new and
            changed files (see :mod:`monitor.intake.crawl.folder`); None: every file.
    """
    log = log if log is not None else CrawlLog()
    collector = Collector(source.max_images, log)
    kind = source.kind
    if kind == "folder":
        root = resolve(source.location) if source.location else None
        yield from folder_files(root, seen, collector, log)
    elif fetcher is None:
        log.error(source.name, f"a {kind} source needs a fetcher")
    elif kind == "urls":
        yield from _url_list(fetcher, source, collector, log)
    elif kind == "page":
        yield from crawl_pages(fetcher, [source.location], source.depth, source.max_pages,
                               collector, log)
    elif kind == "sitemap":
        yield from sitemap_images(fetcher, source.location, source.max_pages, collector, log)
    elif kind == "feed":
        yield from feed_images_source(fetcher, source, collector, log)
    else:  # pragma: no cover - SourceSettings.kind is a Literal
        log.error(source.name, f"unknown source kind {kind!r}")


def feed_images_source(fetcher: Fetcher, source: SourceSettings, collector: Collector,
                       log: CrawlLog) -> Iterator[Discovered]:
    """Every feed of the source: ``location`` and any ``urls``."""
    for url in ([source.location] if source.location else []) + list(source.urls):
        yield from feed_images(fetcher, url, collector, log)


def _url_list(fetcher: Fetcher, source: SourceSettings, collector: Collector,
              log: CrawlLog) -> Iterator[Discovered]:
    """Image URLs as given; other URLs fetched: an image answer is a candidate, a page
    is scanned for images (depth 0)."""
    pages: list[str] = []
    for raw in list(source.urls) + ([source.location] if source.location else []):
        url = clean_url(raw)
        if url is None:
            log.error(raw, "not an http(s) URL")
        elif looks_like_image(url):
            if found := collector.add(url, None):
                yield found
        else:
            pages.append(url)
    if pages:
        yield from crawl_pages(fetcher, pages, 0, source.max_pages, collector, log,
                               image_responses=True)
