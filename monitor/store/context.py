"""The store of one deployment: its database engine, sessions and files on disk.

:class:`Store` is what the layers that only read and write records need (reports,
mail, exports, the queue): no matching engine, no rules, no fetcher. The services
layer's :class:`~monitor.services.workspace.Workspace` extends it with those.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.store.db import open_engine


class Store:
    """Database and folders of a deployment, opened from :class:`Settings`.

    Attributes:
        settings: the validated settings.
        data_dir: root of the embedded store (``storage.data_dir``).
        db: the SQLAlchemy engine, schema migrated to head on open.

    Raises:
        StoreError: the database cannot be opened or is newer than this code.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.db: Engine = open_engine(settings.database_url)
        self.report_dir.mkdir(parents=True, exist_ok=True)

    @property
    def index_dir(self) -> Path:
        """Cached gallery indices (rebuilt from the database when missing or stale)."""
        return self.data_dir / "indices"

    @property
    def gallery_dir(self) -> Path:
        """Content-addressed copies of protected images."""
        return self.data_dir / "gallery"

    @property
    def evidence_dir(self) -> Path:
        """Archived bytes of flagged candidates (chain of custody)."""
        return self.data_dir / "evidence"

    @property
    def report_dir(self) -> Path:
        """Where HTML reports go (``report.dir``)."""
        return self.settings.path(self.settings.report.dir)

    def session(self) -> Session:
        """A new database session (use as a context manager); objects stay usable after
        commit (``expire_on_commit=False``)."""
        return Session(self.db, expire_on_commit=False)

    def put_file(self, rel: str, payload: bytes) -> Path:
        """Write ``payload`` under :attr:`data_dir` at ``rel`` atomically (temporary file in
        the same folder, fsync, ``os.replace``) and return the absolute path."""
        return write_atomic(self.data_dir / rel, payload)

    def keep_file(self, rel: str, source: Path, payload: bytes) -> Path:
        """Make ``rel`` under :attr:`data_dir` hold ``payload``, the bytes of the file
        ``source`` already in the data folder: a hard link (no bytes written) when the
        filesystem allows, else :meth:`put_file`. Returns the absolute path."""
        path = self.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, path)
        except FileExistsError:
            pass
        except OSError:  # another filesystem, no hard links, or the source is gone
            return self.put_file(rel, payload)
        return path


def write_atomic(path: Path, payload: bytes) -> Path:
    """Replace ``path`` with ``payload`` so readers see the old or the new file, never a
    part (temporary file in the same folder, fsync, ``os.replace``); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.replace(fh.name, path)
    except OSError:
        Path(fh.name).unlink(missing_ok=True)
        raise
    return path
