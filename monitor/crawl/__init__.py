"""Discovery of candidate images for each source kind, and one-shot source scans.

* :func:`discover` yields :class:`Discovered` items (no checking): ``folder``
  (new and changed files), ``urls``, ``page`` (HTML crawl), ``sitemap``
  (index, image sitemaps, pages) and ``feed`` (RSS/Atom).
* :func:`run_source` discovers and checks a source as one recorded Scan.
* :func:`fetch_candidate` fetches one discovered URL conditionally (for queue workers).
"""

from __future__ import annotations

from monitor.crawl.base import CrawlLog, Discovered
from monitor.crawl.discover import discover
from monitor.crawl.run import fetch_candidate, run_source

__all__ = ["CrawlLog", "Discovered", "discover", "fetch_candidate", "run_source"]
