"""Folder sources: files that are new or changed since monitor last saw them.

A file is *unchanged* when the database already has a settled (not
``pending``) candidate row for its path and either

* the row's size equals the file's size and the file's mtime is not later than
  the row's ``last_seen`` (no read needed, like ``make`` or ``rsync``), or
* the file's sha256 equals that of a settled row for the path (the file was
  touched or copied back, but its bytes are the same).

Unchanged files are not queued; their rows get ``last_seen`` updated, since a
sighting is a sighting. Hidden files and folders are skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

from monitor.intake.crawl.base import Collector, CrawlLog, Discovered
from monitor.intake.inputs import walk
from monitor.services.workspace import Workspace
from monitor.store.models import Candidate, utcnow

BATCH = 256


def _epoch(when: datetime | None) -> float:
    if when is None:
        return float("-inf")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _unchanged(path: Path, rows: list[Candidate]) -> Candidate | None:
    """The settled row that shows ``path`` unchanged, or None."""
    settled = [r for r in rows if r.status != "pending"]
    if not settled:
        return None
    st = path.stat()
    newest = max(settled, key=lambda r: _epoch(r.last_seen))
    if newest.size_bytes == st.st_size and st.st_mtime <= _epoch(newest.last_seen):
        return newest
    sha = file_sha256(path)
    return next((r for r in settled if r.sha256 == sha), None)


def folder_files(ws: Workspace, location: str, collector: Collector,
                 log: CrawlLog) -> Iterator[Discovered]:
    """Yield new and changed files under ``location`` (resolved against the deployment root)."""
    root = ws.settings.path(location) if location else None
    if root is None or not root.is_dir():
        log.error(str(root or "(no location)"), "not a folder")
        return
    paths = list(walk(root))
    for start in range(0, len(paths), BATCH):
        chunk = paths[start:start + BATCH]
        with ws.session() as s:
            rows = s.exec(select(Candidate).where(
                Candidate.source.in_([str(p) for p in chunk]))).all()
        by_path: dict[str, list[Candidate]] = {}
        for row in rows:
            by_path.setdefault(row.source, []).append(row)
        seen_ids: list[int] = []
        new: list[Path] = []
        for path in chunk:
            try:
                same = _unchanged(path, by_path.get(str(path), []))
            except OSError as exc:
                log.error(str(path), f"cannot read: {exc}")
                continue
            if same is not None:
                seen_ids.append(same.id)
            else:
                new.append(path)
        _touch(ws, seen_ids)
        log.unchanged_files += len(seen_ids)
        for path in new:
            if found := collector.add_file(str(path)):
                yield found
            elif collector.full:
                return


def _touch(ws: Workspace, ids: list[int]) -> None:
    if not ids:
        return
    now = utcnow()
    with ws.session() as s:
        for row in s.exec(select(Candidate).where(Candidate.id.in_(ids))).all():
            row.last_seen = now
            s.add(row)
        s.commit()
