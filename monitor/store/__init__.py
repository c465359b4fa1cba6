"""Persistence: engine and sessions, models, migrations, and the repositories that are
the only code writing SQL. :class:`Store` is one deployment's database and files;
:class:`BlobStore` (:mod:`monitor.store.blobs`) the bytes every process shares."""

from monitor.store.blobs import BlobStore, open_blobs
from monitor.store.context import Store
from monitor.store.files import write_atomic

__all__ = ["BlobStore", "Store", "open_blobs", "write_atomic"]
