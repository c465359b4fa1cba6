"""Blob store: the one interface to the bytes every api, worker and scheduler process must
see alike (uploaded submissions, stored gallery copies), on one machine or several.

Keys are the relative POSIX paths used under the data folder (``gallery/ab/abcd….jpeg``,
``uploads/ab/abcd…``), checked by :func:`check_key`. Two back ends:

- :class:`LocalBlobs`, a folder: the data folder by default, so existing layouts are
  unchanged; for several machines, a shared mount (NFS, SMB). A write goes to a temporary
  file in the same folder, is fsynced and renamed into place (:func:`write_atomic`).
- :class:`S3Blobs`, an S3-compatible bucket (AWS, MinIO, Ceph, ...). A ``PutObject``
  becomes visible whole or not at all, and a reader of an overwritten key gets the old
  or the new object, never a mix (S3's strong read-after-write consistency).

The S3 back end uses boto3, the AWS SDK, rather than fsspec/s3fs: five synchronous calls
on whole objects (put, get, head, delete) are all we need, made from worker threads, and
boto3's clients are synchronous and thread-safe. s3fs runs aiobotocore in an event loop of
its own and aiobotocore pins botocore to a narrow window that lags boto3 (and moto, with
which the tests run a real S3-compatible server, brings boto3 anyway); its file-like and
caching features would go unused. Install it with ``pip install 'monitor[s3]'``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from monitor.errors import BlobNotFound, ConfigError, StoreError
from monitor.store.files import write_atomic

if TYPE_CHECKING:
    from monitor.config import Settings


def check_key(key: str) -> str:
    """``key`` itself when it is a safe relative key: non-empty ``/``-separated parts,
    none of them empty, ``.`` or ``..``; no leading ``/``, backslash or NUL.

    Raises:
        ValueError: anything else (a key could otherwise leave the store's folder).
    """
    if (not isinstance(key, str) or not key or key.startswith("/") or "\\" in key
            or "\x00" in key or any(p in ("", ".", "..") for p in key.split("/"))):
        raise ValueError(f"bad blob key {key!r}: a relative path without '.', '..' or '//'")
    return key


class BlobStore(ABC):
    """Bytes by key. ``url`` names the store in messages.

    Every method raises ``ValueError`` for a bad key (:func:`check_key`) and
    :class:`~monitor.errors.StoreError` when the store cannot be reached or written.
    """

    url: str

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``, replacing what is there; atomic: a reader sees the
        old bytes or the new, never a part."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes at ``key``.

        Raises:
            BlobNotFound: nothing is stored at ``key``.
        """

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether something is stored at ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens when it is absent."""

    def put_file(self, key: str, path: Path) -> None:
        """Store the file ``path`` at ``key`` (as :meth:`put`; S3 streams it in parts)."""
        self.put(key, Path(path).read_bytes())

    def get_file(self, key: str, path: Path) -> None:
        """Write the bytes at ``key`` to the file ``path`` (replaced atomically; S3 streams
        them).

        Raises:
            BlobNotFound: nothing is stored at ``key``.
        """
        write_atomic(Path(path), self.get(key))

    def keep(self, key: str, source: Path | None, data: bytes) -> None:
        """Store ``data`` at ``key`` when ``source``, a file holding the same bytes, cannot
        stand for it: a folder store makes ``key`` a hard link to ``source`` (no bytes
        written; an existing ``key`` is kept, keys being content-addressed); otherwise,
        or when no link can be made (another filesystem, ``source`` gone), :meth:`put`."""
        path = self.local_path(key) if source is not None else None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, path)
                return
            except FileExistsError:
                return
            except OSError:
                pass
        self.put(key, data)

    def local_path(self, key: str) -> Path | None:
        """The file holding ``key`` when the store is a folder (present or not), else None:
        for code that needs a path (hard links, decoding a file without a copy)."""
        check_key(key)
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class LocalBlobs(BlobStore):
    """Blobs as files under ``root`` (key ``a/b`` is the file ``root/a/b``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def local_path(self, key: str) -> Path:
        """The file of ``key`` (which may not exist)."""
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        """See :meth:`BlobStore.put` (temporary file, fsync, ``os.replace``)."""
        path = self.local_path(key)
        with self._errors("write", key):
            write_atomic(path, data)

    def get(self, key: str) -> bytes:
        """See :meth:`BlobStore.get`."""
        path = self.local_path(key)
        with self._errors("read", key):
            return path.read_bytes()

    def exists(self, key: str) -> bool:
        """See :meth:`BlobStore.exists`."""
        return self.local_path(key).is_file()

    def delete(self, key: str) -> None:
        """See :meth:`BlobStore.delete`."""
        path = self.local_path(key)
        with self._errors("delete", key):
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _errors(self, op: str, key: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(f"blob store {self.url}: no object {key}") from exc
        except OSError as exc:
            raise StoreError(f"blob store {self.url}: cannot {op} {key}: {exc}") from exc


class S3Blobs(BlobStore):
    """Blobs as objects ``prefix + key`` of ``bucket``, through a boto3 S3 ``client``."""

    MISSING = frozenset({"NoSuchKey", "NotFound", "404"})
    """Error codes S3 answers for an absent key (``HEAD`` has no body: ``404``)."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix, client
        self.url = f"s3://{bucket}/{prefix}"

    def put(self, key: str, data: bytes) -> None:
        """See :meth:`BlobStore.put`; the server checks the bytes against their MD5."""
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        with self._errors("put", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                   ContentMD5=md5)

    def get(self, key: str) -> bytes:
        """See :meth:`BlobStore.get`."""
        with self._errors("get", key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        """See :meth:`BlobStore.exists` (a ``HEAD`` request)."""
        try:
            with self._errors("head", key):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except BlobNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """See :meth:`BlobStore.delete`."""
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def put_file(self, key: str, path: Path) -> None:
        """See :meth:`BlobStore.put_file` (boto3 ``upload_file``: multipart past 8 MB)."""
        with self._errors("put", key):
            self.client.upload_file(str(path), self.bucket, self._key(key))

    def get_file(self, key: str, path: Path) -> None:
        """See :meth:`BlobStore.get_file` (boto3 ``download_file`` into a temporary file,
        then ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        with self._errors("get", key):
            self.client.download_file(self.bucket, self._key(key), str(tmp))
        os.replace(tmp, path)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextlib.contextmanager
    def _errors(self, op: str, key: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in self.MISSING:
                raise BlobNotFound(f"blob store {self.url}: no object {key}") from exc
            raise StoreError(f"blob store {self.url}: {op} {key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"blob store {self.url}: {op} {key} failed: {exc}") from exc


@dataclass(frozen=True)
class S3Options:
    """Connection settings of an S3-compatible store; empty values leave boto3's defaults
    (its own credential chain, region and AWS endpoints)."""

    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)


def s3_client(opts: S3Options) -> Any:
    """A boto3 S3 client for ``opts``: path-style addressing and checksums only where
    required when ``endpoint_url`` names an S3-compatible server (MinIO, Ceph, ...).

    Raises:
        ConfigError: boto3 is not installed.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ConfigError("storage.blob_url is s3://… but boto3 is not installed "
                          "(fix: pip install 'monitor[s3]')") from exc
    compat: dict[str, Any] = {}
    if opts.endpoint_url:
        compat = dict(s3={"addressing_style": "path"},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required")
    config = Config(connect_timeout=10, read_timeout=60,
                    retries={"max_attempts": 5, "mode": "standard"}, **compat)
    return boto3.session.Session().client(
        "s3", endpoint_url=opts.endpoint_url or None, region_name=opts.region or None,
        aws_access_key_id=opts.access_key_id or None,
        aws_secret_access_key=opts.secret_access_key or None, config=config)


def open_blobs(url: str, root: Path, s3: S3Options | None = None) -> BlobStore:
    """The blob store ``url`` names: empty for the folder ``root``; a folder (a relative
    one from the working directory) or a ``file://`` URL; ``s3://bucket/prefix`` for an
    S3-compatible bucket reached with ``s3``.

    Raises:
        ConfigError: another scheme, an S3 URL without a bucket or with a bad prefix, or
            boto3 missing for an S3 URL.
    """
    url = url.strip()
    if not url:
        return LocalBlobs(root)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"storage.blob_url {url!r}: a file:// URL names a local folder")
        return LocalBlobs(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        prefix = parts.path.strip("/")
        try:
            prefix = check_key(prefix) + "/" if prefix else ""
        except ValueError as exc:
            raise ConfigError(f"storage.blob_url {url!r}: {exc}") from exc
        if not parts.netloc:
            raise ConfigError(f"storage.blob_url {url!r}: name a bucket, s3://bucket/prefix")
        return S3Blobs(parts.netloc, prefix, s3_client(s3 or S3Options()))
    if "://" in url:
        raise ConfigError(f"storage.blob_url {url!r}: use a folder, file://… or "
                          "s3://bucket/prefix")
    return LocalBlobs(Path(url).expanduser().absolute())


def blobs_from_settings(settings: Settings) -> BlobStore:
    """The blob store of ``storage.blob_url`` (a relative folder from the deployment
    root; empty: the data folder), with the ``storage.s3_*`` settings for S3.

    Raises:
        ConfigError: see :func:`open_blobs`; the secret key file cannot be read.
    """
    st = settings.storage
    url = st.blob_url.strip()
    if url.startswith("s3://"):
        secret = settings.secret(st.s3_secret_access_key, st.s3_secret_access_key_file)
        return open_blobs(url, settings.data_dir, S3Options(
            st.s3_endpoint_url, st.s3_region, st.s3_access_key_id, secret))
    if url and "://" not in url:
        url = str(settings.path(url))
    return open_blobs(url, settings.data_dir)
