"""Indices are caches of the database: rebuilt when missing or stale, reconciled on open."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from monitor.config import load_settings
from monitor.imaging.decode import decode_bytes
from monitor.services.gallery import add_paths, remove
from monitor.services.workspace import Workspace
from tests.conftest import encode


def _gallery(deploy: Path, photos) -> list[str]:
    (deploy / "g").mkdir()
    for name in ("astronaut", "coffee", "rocket"):
        photos[name].save(deploy / "g" / f"{name}.png")
    return [str(deploy / "g")]


def _finds(ws: Workspace, photos) -> int | None:
    crop = photos["rocket"].crop((100, 50, 500, 400)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    matches = ws.engine().match(decode_bytes(encode(crop)))
    return matches[0].gallery_id if matches else None


def test_index_rebuilt_when_missing_and_reconciled(deploy: Path, photos) -> None:
    ws = Workspace(load_settings())
    added = add_paths(ws, _gallery(deploy, photos), "c")
    rocket = next(r.gallery_id for r in added if r.path.endswith("rocket.png"))
    folder = deploy / "data" / "indices"
    assert (folder / "features").is_dir() and (folder / "hash.npz").exists()
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "local.npz").write_bytes(b"an index file of an older monitor")
    fresh = Workspace(load_settings())
    assert sorted(fresh.engine().local_index.ids()) == sorted(r.gallery_id for r in added)
    assert len(fresh.engine().hash_index) == len(added)
    assert (folder / "features").is_dir() and _finds(fresh, photos) == rocket
    assert not (folder / "local.npz").exists()  # superseded, removed at the save

    remove(fresh, [str(rocket)])
    again = Workspace(load_settings())
    assert rocket not in again.engine().local_index.ids()
    assert _finds(again, photos) is None


def test_stale_index_after_settings_change(deploy: Path, photos, monkeypatch) -> None:
    ws = Workspace(load_settings())
    add_paths(ws, _gallery(deploy, photos), "c")
    counts = [len(ws.engine().local_index.features(g)[0]) for g in ws.engine().local_index.ids()]
    monkeypatch.setenv("MONITOR_LOCAL__GALLERY_FEATURES", "300")
    changed = Workspace(load_settings())
    engine = changed.engine()
    assert len(engine.local_index) == 3
    after = [len(engine.local_index.features(g)[0]) for g in engine.local_index.ids()]
    assert max(after) <= 301 < max(counts)  # OpenCV may keep one tie past nfeatures
    again = Workspace(load_settings()).engine()  # the rebuilt store was saved: reused
    assert [len(again.local_index.features(g)[0]) for g in again.local_index.ids()] == after


def test_gallery_without_descriptors_is_backfilled_and_signatures_cached(deploy: Path,
                                                                        photos) -> None:
    """Images added before the descriptor stage (no SSCD vector, as after migration 0005)
    are embedded when the engine loads, stored, and indexed; structure signatures are
    kept in the feature store beside the local features and reconciled like them."""
    from sqlalchemy import update
    from sqlmodel import select

    from monitor.store.models import ProtectedImage

    ws = Workspace(load_settings())
    added = add_paths(ws, _gallery(deploy, photos), "c")
    with ws.session() as s:
        s.execute(update(ProtectedImage).values(descriptor_vector=None, descriptor_model=None))
        s.commit()
    (deploy / "data" / "indices" / "descriptor.npz").unlink()
    fresh = Workspace(load_settings())
    engine = fresh.engine()
    assert len(engine.descriptor_index) == len(added)
    assert all(engine.local_index.signature(r.gallery_id) is not None for r in added)
    assert (deploy / "data" / "indices" / "descriptor.npz").exists()
    with fresh.session() as s:
        rows = s.exec(select(ProtectedImage)).all()
        assert all(r.descriptor_vector is not None and len(r.descriptor_vector) == 512 * 4
                   and r.descriptor_model == engine.descriptor.fingerprint for r in rows)
    rocket = next(r.gallery_id for r in added if r.path.endswith("rocket.png"))
    assert _finds(fresh, photos) == rocket
