"""The blob store (monitor.store.blobs): a local folder, and an S3-compatible bucket on a
real S3 server (moto's, started here on a free loopback port). End to end: a workspace
whose blobs live in the bucket stores its gallery copies there, and a second machine
(another data folder, the same database and bucket) rebuilds its indices from them and
finds an edited copy of a real photo."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from monitor.config import load_settings
from monitor.errors import BlobNotFound, ConfigError, MonitorError, StoreError
from monitor.store.blobs import (
    BlobStore,
    LocalBlobs,
    S3Blobs,
    S3Options,
    blobs_from_settings,
    open_blobs,
    s3_client,
)
from tests.conftest import encode, skimage_photo

moto_server = pytest.importorskip("moto.server")

BAD_KEYS = ["", "/etc/passwd", "../x", "gallery/../../x", "a//b", "a/./b", "a\\b", "a/",
            "a\x00b", ".."]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto) on a free loopback port, for this module."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _options(endpoint: str) -> S3Options:
    return S3Options(endpoint, "us-east-1", "testing", "testing-secret")


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the server."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    name = f"monitor-{uuid.uuid4().hex[:12]}"
    s3_client(_options(s3_endpoint)).create_bucket(Bucket=name)
    return name


def _keys(s3_endpoint: str, bucket: str) -> list[str]:
    listing = s3_client(_options(s3_endpoint)).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


@pytest.fixture(params=["local", "s3"])
def blobs(request, tmp_path: Path) -> BlobStore:
    """Each back end in turn, empty."""
    if request.param == "local":
        return open_blobs("", tmp_path / "data")
    endpoint = request.getfixturevalue("s3_endpoint")
    name = request.getfixturevalue("bucket")
    return open_blobs(f"s3://{name}/deploy/one", tmp_path, _options(endpoint))


def test_put_get_exists_delete(blobs: BlobStore) -> None:
    key = "gallery/ab/" + "ab" * 32 + ".jpeg"
    data = encode(skimage_photo("coffee"))
    assert not blobs.exists(key)
    blobs.put(key, data)
    assert blobs.exists(key) and blobs.get(key) == data
    blobs.put(key, b"replaced")
    assert blobs.get(key) == b"replaced"
    blobs.put("uploads/cd/" + "cd" * 32, b"")  # an empty object is an object
    assert blobs.exists("uploads/cd/" + "cd" * 32)
    blobs.delete(key)
    assert not blobs.exists(key)
    blobs.delete(key)  # deleting what is absent is fine
    assert not blobs.exists("gallery/ab")  # a "folder" is not an object


def test_missing_key_raises_blob_not_found(blobs: BlobStore) -> None:
    with pytest.raises(BlobNotFound, match="uploads/00/nothing"):
        blobs.get("uploads/00/nothing")
    assert issubclass(BlobNotFound, StoreError) and issubclass(BlobNotFound, MonitorError)
    assert BlobNotFound.code == "blob_not_found" and BlobNotFound.http_status == 503


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(blobs: BlobStore, key: str) -> None:
    for call in (lambda: blobs.put(key, b"x"), lambda: blobs.get(key),
                 lambda: blobs.exists(key), lambda: blobs.delete(key),
                 lambda: blobs.local_path(key)):
        with pytest.raises(ValueError, match="bad blob key"):
            call()


def test_local_layout_is_the_data_folder(tmp_path: Path) -> None:
    """Keys are the relative paths under the data folder used before the blob store; a
    write leaves no temporary file behind; S3 has no local path."""
    blobs = open_blobs("", tmp_path)
    assert isinstance(blobs, LocalBlobs)
    blobs.put("gallery/ab/abc.png", b"png")
    assert (tmp_path / "gallery" / "ab" / "abc.png").read_bytes() == b"png"
    assert blobs.local_path("gallery/ab/abc.png") == tmp_path / "gallery" / "ab" / "abc.png"
    assert [p.name for p in (tmp_path / "gallery" / "ab").iterdir()] == ["abc.png"]
    assert S3Blobs("b", "", client=None).local_path("gallery/ab/abc.png") is None


def test_failed_local_write_is_a_store_error(tmp_path: Path) -> None:
    """A write that cannot happen (here: a file stands where the key's folder must be)
    raises StoreError and leaves the objects there as they were."""
    blobs = open_blobs("", tmp_path)
    blobs.put("a/b", b"old")
    with pytest.raises(StoreError, match="cannot write a/b/c"):
        blobs.put("a/b/c", b"new")
    assert blobs.get("a/b") == b"old"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


def test_readers_never_see_a_partial_overwrite(blobs: BlobStore) -> None:
    """One thread overwrites a key with two large payloads in turn while others read it:
    every read is one payload whole."""
    key, first, second = "uploads/ee/big", b"A" * 3_000_000, b"B" * 2_000_000
    blobs.put(key, first)
    stop, seen, bad = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            data = blobs.get(key)
            if data in (first, second):
                seen.add(len(data))
            else:
                bad.append(len(data))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(8):
        blobs.put(key, second if i % 2 == 0 else first)
    stop.set()
    for t in readers:
        t.join()
    assert not bad and seen


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_blobs("  ", tmp_path / "d").local_path("k") == tmp_path / "d" / "k"
    assert open_blobs(f"file://{tmp_path}/shared%20mount", tmp_path).local_path("k") == (
        tmp_path / "shared mount" / "k")
    assert open_blobs("rel/blobs", Path("/unused")).local_path("k") == tmp_path / "rel/blobs/k"
    for url, why in [("gs://bucket/x", "use a folder"), ("s3:///x", "name a bucket"),
                     ("s3://bucket/a/../b", "bad blob key"), ("file://host/x", "local folder")]:
        with pytest.raises(ConfigError, match=why):
            open_blobs(url, tmp_path)
    s3 = open_blobs("s3://bucket/a/b/", tmp_path, S3Options(region="us-east-1"))
    assert isinstance(s3, S3Blobs) and (s3.bucket, s3.prefix) == ("bucket", "a/b/")
    assert "secret" not in repr(S3Options(secret_access_key="secret"))


def test_settings_choose_the_store(deploy: Path, monkeypatch: pytest.MonkeyPatch,
                                   s3_endpoint: str, bucket: str) -> None:
    """Empty: the data folder; a relative folder: from the deployment root; S3 with its
    secret key from a file named in the settings."""
    assert blobs_from_settings(load_settings()).local_path("k") == deploy / "data" / "k"
    monkeypatch.setenv("MONITOR_STORAGE__BLOB_URL", "shared")
    assert blobs_from_settings(load_settings()).local_path("k") == deploy / "shared" / "k"
    (deploy / "s3.key").write_text("testing-secret\n")
    for key, value in [("BLOB_URL", f"s3://{bucket}/p"), ("S3_ENDPOINT_URL", s3_endpoint),
                       ("S3_REGION", "us-east-1"), ("S3_ACCESS_KEY_ID", "testing"),
                       ("S3_SECRET_ACCESS_KEY_FILE", "s3.key")]:
        monkeypatch.setenv(f"MONITOR_STORAGE__{key}", value)
    store = blobs_from_settings(load_settings())
    store.put("uploads/aa/x", b"x")
    assert _keys(s3_endpoint, bucket) == ["p/uploads/aa/x"]


def test_unreachable_s3_is_a_store_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_blobs("s3://bucket", tmp_path, _options(f"http://127.0.0.1:{port}"))
    with pytest.raises(StoreError, match="get k failed") as err:
        store.get("k")
    assert not isinstance(err.value, BlobNotFound)


def test_s3_workspace_keeps_gallery_and_uploads_in_the_bucket(
        deploy: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, bucket: str) -> None:
    from monitor.services.check import CandidateInput, check_one
    from monitor.services.gallery import add_paths, stored_name
    from monitor.services.submissions import prepare_upload
    from monitor.services.workspace import Workspace

    (deploy / "config.toml").write_text("[clip]\nenabled = false\n")
    for key, value in [("BLOB_URL", f"s3://{bucket}/prod"), ("S3_ENDPOINT_URL", s3_endpoint),
                       ("S3_REGION", "us-east-1"), ("S3_ACCESS_KEY_ID", "testing"),
                       ("S3_SECRET_ACCESS_KEY", "testing-secret")]:
        monkeypatch.setenv(f"MONITOR_STORAGE__{key}", value)
    (deploy / "g").mkdir()
    photo = skimage_photo("astronaut")
    photo.save(deploy / "g" / "astronaut.png")
    ws = Workspace(load_settings())
    [added] = add_paths(ws, [str(deploy / "g")], "c")
    assert added.status == "added"
    stored = stored_name(added.sha256, "png")
    assert _keys(s3_endpoint, bucket) == [f"prod/{stored}"]
    assert not (deploy / "data" / "gallery").exists()

    # Another machine: its own data folder (indices), the same database and bucket. Its
    # engine rebuilds every index from the database and the stored copy in the bucket.
    monkeypatch.setenv("MONITOR_STORAGE__DATABASE_URL", ws.settings.database_url)
    monkeypatch.setenv("MONITOR_STORAGE__DATA_DIR", str(deploy / "machine2"))
    other = Workspace(load_settings())
    assert isinstance(other.blobs, S3Blobs)
    edited = ImageEnhance.Color(photo.crop((40, 30, 480, 460))).enhance(0.4)
    edited = edited.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((330, 322))
    data = encode(edited, quality=70)
    enqueue = prepare_upload(other, data, "jpeg", None, {}, None, depth=0)
    assert f"prod/{enqueue['path']}" in _keys(s3_endpoint, bucket)
    assert not (deploy / "machine2" / "uploads").exists()
    # What the worker does with the job's path (monitor.daemon.worker.candidate_input).
    item = CandidateInput(f"upload:{enqueue['sha256']}", sha256=enqueue["sha256"],
                          spool=other.blobs.local_path(enqueue["path"]), sniffed=True,
                          data=other.blobs.get(enqueue["path"]))
    result = check_one(other, item)
    assert result.verdict.value == "violation"
    assert [o.match.gallery_id for o in result.outcomes][:1] == [added.gallery_id]
    assert added.gallery_id in other.engine().local_index.ids()  # features from the bucket
    assert (deploy / "machine2" / "indices").is_dir()
    assert not (deploy / "machine2" / "gallery").exists()
    other.blobs.delete(stored)  # a lost stored copy is reported as such
    with pytest.raises(BlobNotFound):
        other.load_blob(stored)
