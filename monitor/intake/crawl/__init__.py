"""Discovery of candidate images for each source kind (no checking, no database).

:func:`discover` yields :class:`Discovered` items: ``folder`` (new and changed
files, judged through a :class:`SeenFiles`), ``urls``, ``page`` (HTML crawl),
``sitemap`` (index, image sitemaps, pages) and ``feed`` (RSS/Atom). Checking a
source as one recorded scan, with the fetcher and the candidate table wired in, is
:mod:`monitor.services.sources`.
"""

from __future__ import annotations

from monitor.intake.crawl.base import CrawlLog, Discovered
from monitor.intake.crawl.discover import discover
from monitor.intake.crawl.folder import SeenFiles, SightingRow

__all__ = ["CrawlLog", "Discovered", "SeenFiles", "SightingRow", "discover"]
