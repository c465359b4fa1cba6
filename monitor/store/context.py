"""The store of one deployment: its database engine, sessions and files on disk.

:class:`Store` is what the layers that only read and write records need (reports,
mail, exports, the queue): no matching engine, no rules, no fetcher. The services
layer's :class:`~monitor.services.workspace.Workspace` extends it with those.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.store.db import open_engine

if TYPE_CHECKING:
    from monitor.store.blobs import BlobStore


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

    @cached_property
    def blobs(self) -> BlobStore:
        """The blob store every process of the deployment shares (``storage.blob_url``;
        the data folder by default), opened at first use: gallery copies, uploads,
        evidence and job results.

        Raises:
            ConfigError: the URL is unsupported, or boto3 is missing for ``s3://``.
        """
        from monitor.store.blobs import blobs_from_settings

        return blobs_from_settings(self.settings)

    @property
    def report_dir(self) -> Path:
        """Where HTML reports go (``report.dir``)."""
        return self.settings.path(self.settings.report.dir)

    def session(self) -> Session:
        """A new database session (use as a context manager); objects stay usable after
        commit (``expire_on_commit=False``)."""
        return Session(self.db, expire_on_commit=False)
