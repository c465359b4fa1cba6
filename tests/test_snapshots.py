"""Index snapshots in an S3 bucket (a real moto server): a new machine starts from one."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_settings
from tests.conftest import skimage_photo
from tests.test_blobs import _keys, bucket, s3_endpoint  # noqa: F401 (fixtures)


def _machine(monkeypatch: pytest.MonkeyPatch, deploy: Path, name: str, endpoint: str,
             bucket_name: str, db_url: str | None):
    from monitor.services.workspace import Workspace

    for key, value in [("BLOB_URL", f"s3://{bucket_name}/prod"),
                       ("S3_ENDPOINT_URL", endpoint), ("S3_REGION", "us-east-1"),
                       ("S3_ACCESS_KEY_ID", "testing"),
                       ("S3_SECRET_ACCESS_KEY", "testing-secret"),
                       ("DATA_DIR", str(deploy / name))]:
        monkeypatch.setenv(f"MONITOR_STORAGE__{key}", value)
    if db_url:
        monkeypatch.setenv("MONITOR_STORAGE__DATABASE_URL", db_url)
    return Workspace(load_settings())


def test_new_machine_starts_from_the_snapshot(deploy: Path, monkeypatch: pytest.MonkeyPatch,
                                              s3_endpoint: str, bucket: str) -> None:  # noqa: F811
    from monitor.services.gallery import add_paths
    from monitor.services.snapshots import LATEST, publish, restore

    (deploy / "config.toml").write_text("[clip]\nenabled = false\n")
    first = _machine(monkeypatch, deploy, "m1", s3_endpoint, bucket, None)
    db_url = first.settings.database_url
    (deploy / "g").mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        skimage_photo(name).save(deploy / "g" / f"{name}.png")
    add_paths(first, [str(deploy / "g" / f"{n}.png") for n in ("astronaut", "coffee")], "c")
    snap = publish(first)
    assert snap is not None and "hash.npz" in snap.files
    assert any(k.startswith(f"prod/{snap.prefix}/features/") for k in _keys(s3_endpoint, bucket))
    assert f"prod/{LATEST}" in _keys(s3_endpoint, bucket)
    add_paths(first, [str(deploy / "g" / "chelsea.png")], "c")  # after the snapshot

    second = _machine(monkeypatch, deploy, "m2", s3_endpoint, bucket, db_url)
    restored = restore(second)
    assert restored is not None and restored.version == snap.version
    assert restore(second) is None, "an index folder that holds an index is kept"
    fetched: list[int] = []
    engine = second.engine(progress=fetched.append)
    assert len(fetched) == 1, "only the image added after the snapshot is built"
    assert sorted(engine.hash_index.ids().tolist()) == second.live_ids().tolist()
    assert len(engine.local_index.ids()) == 3

    republished = publish(first)
    third = publish(first)
    keys = _keys(s3_endpoint, bucket)
    assert not any(k.startswith(f"prod/{snap.prefix}/") for k in keys), "old ones deleted"
    assert any(k.startswith(f"prod/{third.prefix}/") for k in keys)
    assert any(k.startswith(f"prod/{republished.prefix}/") for k in keys), "KEEP = 2"
