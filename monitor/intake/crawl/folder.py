"""Folder sources: files that are new or changed since monitor last saw them.

A file is *unchanged* when a settled (not ``pending``) sighting of its path is
known (:class:`SeenFiles`, e.g. the candidate table) and either

* the newest sighting's size equals the file's size and the file's mtime is not
  later than that sighting's ``last_seen`` (no read needed, like ``make`` or
  ``rsync``), or
* the file's sha256 equals that of a settled sighting of the path (the file was
  touched or copied back, but its bytes are the same).

Unchanged files are not yielded; their sightings are touched (``last_seen`` now),
since a sighting is a sighting. Hidden files and folders are skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol

from monitor.intake.crawl.base import Collector, CrawlLog, Discovered
from monitor.intake.inputs import walk

BATCH = 256
"""Paths looked up together."""

SightingRow = tuple[int, str, int | None, datetime | None, str | None]
"""``(id, status, size_bytes, last_seen, sha256)`` of one settled sighting of a path."""


class SeenFiles(Protocol):
    """What discovery needs to know of earlier sightings of files (implemented over the
    candidate table by :class:`monitor.store.sightings.CandidateSightings`)."""

    def settled(self, paths: Sequence[str]) -> Mapping[str, Sequence[SightingRow]]:
        """``{path: [row, ...]}`` of the settled (not ``pending``) sightings of ``paths``;
        paths never seen may be missing."""
        ...

    def touch(self, ids: Sequence[int]) -> None:
        """Set ``last_seen`` of the sightings with these ids to now."""
        ...


class Seen(NamedTuple):
    """One settled sighting (a :data:`SightingRow` with names); times are UTC."""

    id: int
    status: str
    size_bytes: int | None
    last_seen: datetime | None
    sha256: str | None


def _epoch(when: datetime | None) -> float:
    if when is None:
        return float("-inf")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks.

    Raises:
        OSError: the file cannot be read.
    """
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def unchanged(path: Path, rows: Sequence[SightingRow]) -> Seen | None:
    """The settled sighting that shows ``path`` unchanged, or None (new or changed).

    Raises:
        OSError: the file cannot be stat'ed or read.
    """
    settled = [s for s in map(Seen._make, rows) if s.status != "pending"]
    if not settled:
        return None
    st = path.stat()
    newest = max(settled, key=lambda r: _epoch(r.last_seen))
    if newest.size_bytes == st.st_size and st.st_mtime <= _epoch(newest.last_seen):
        return newest
    sha = file_sha256(path)
    return next((r for r in settled if r.sha256 == sha), None)


def folder_files(root: Path | None, seen: SeenFiles | None, collector: Collector,
                 log: CrawlLog) -> Iterator[Discovered]:
    """Yield new and changed files under the folder ``root`` (all files when ``seen`` is
    None); unchanged ones are touched through ``seen`` and counted in
    ``log.unchanged_files``. A missing folder or an unreadable file goes to ``log``."""
    if root is None or not root.is_dir():
        log.error(str(root or "(no location)"), "not a folder")
        return
    paths = list(walk(root))
    for start in range(0, len(paths), BATCH):
        chunk = paths[start:start + BATCH]
        known = seen.settled([str(p) for p in chunk]) if seen is not None else {}
        seen_ids: list[int] = []
        new: list[Path] = []
        for path in chunk:
            try:
                same = unchanged(path, known.get(str(path), ()))
            except OSError as exc:
                log.error(str(path), f"cannot read: {exc}")
                continue
            if same is not None:
                seen_ids.append(same.id)
            else:
                new.append(path)
        if seen_ids and seen is not None:
            seen.touch(seen_ids)
        log.unchanged_files += len(seen_ids)
        for path in new:
            if found := collector.add_file(str(path)):
                yield found
            elif collector.full:
                return
