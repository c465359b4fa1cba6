"""Stored files as the outcome layer reads them (archived evidence, stored gallery copies):
through the deployment's blob store (:mod:`monitor.store.blobs`), never straight from the
data folder, so reports, exports, drafts and the dashboard show the same bytes on every
machine of a deployment whose files live in a bucket.

Keys are the relative paths recorded in the database (``evidence/ab/abcd….jpeg``,
``gallery/ab/abcd….png``). Where a person needs to be told where a file is (exports,
takedown drafts, ``monitor violations show``), :func:`location` gives the file's absolute
path when the blob store is a folder, else the object's URL (``s3://bucket/prefix/key``).
"""

from __future__ import annotations

from pathlib import Path

from monitor.errors import BlobNotFound
from monitor.store import Store
from monitor.store.blobs import BlobStore, LocalBlobs


def object_url(blobs: BlobStore, key: str) -> str:
    """The URL naming ``key`` in ``blobs`` (``s3://bucket/prefix/key``; for a folder, its
    path joined with ``key``)."""
    return f"{blobs.url.rstrip('/')}/{key}"


def location(ws: Store, rel: str) -> str:
    """Where ``rel`` is stored, for people: the absolute path of its file when the blob
    store is a folder, else the object's URL (:func:`object_url`); ``rel`` itself when it
    is not a valid key (never written by monitor).

    Raises:
        ConfigError: see :attr:`Store.blobs <monitor.store.Store.blobs>`.
    """
    blobs = ws.blobs
    try:
        path = blobs.local_path(rel)
    except ValueError:
        return rel
    return str(path) if path is not None else object_url(blobs, rel)


def local_file(ws: Store, rel: str) -> Path | None:
    """The file holding ``rel`` when the blob store is a folder (None for a bucket); the
    file may be absent.

    Raises:
        ValueError: ``rel`` is not a valid key.
        ConfigError: see :attr:`Store.blobs <monitor.store.Store.blobs>`.
    """
    return ws.blobs.local_path(rel)


def fetch(ws: Store, rel: str | None) -> Path | bytes | None:
    """What a download of ``rel`` serves: its file (resolved, inside the folder) when the
    blob store is a folder, so it can be streamed, else its bytes; None when ``rel`` is
    empty or not a valid key, or nothing is stored there.

    Raises:
        StoreError: the blob store cannot be read (other than an absent object).
        ConfigError: see :attr:`Store.blobs <monitor.store.Store.blobs>`.
    """
    if not rel:
        return None
    blobs = ws.blobs
    try:
        path = blobs.local_path(rel)
        if path is None:
            return blobs.get(rel)
    except (ValueError, BlobNotFound):
        return None
    path = path.resolve()
    root = blobs.root.resolve() if isinstance(blobs, LocalBlobs) else path.parent
    return path if path.is_relative_to(root) and path.is_file() else None
