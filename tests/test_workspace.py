"""Indices are caches of the database: rebuilt when missing or stale, reconciled on open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    index_file = deploy / "data" / "indices" / "local.npz"
    assert index_file.exists()
    index_file.unlink()
    fresh = Workspace(load_settings())
    assert sorted(fresh.engine().local_index.ids()) == sorted(r.gallery_id for r in added)
    assert index_file.exists() and _finds(fresh, photos) == rocket

    remove(fresh, [str(rocket)])
    again = Workspace(load_settings())
    assert rocket not in again.engine().local_index.ids()
    assert _finds(again, photos) is None


def test_stale_index_after_settings_change(deploy: Path, photos, monkeypatch) -> None:
    ws = Workspace(load_settings())
    add_paths(ws, _gallery(deploy, photos), "c")
    before = np.load(deploy / "data" / "indices" / "local.npz")["__fingerprint__"]
    monkeypatch.setenv("MONITOR_LOCAL__GALLERY_FEATURES", "300")
    changed = Workspace(load_settings())
    assert len(changed.engine().local_index) == 3
    after = np.load(deploy / "data" / "indices" / "local.npz")["__fingerprint__"]
    assert str(before) != str(after)


def test_gallery_without_descriptors_is_backfilled_and_signatures_cached(deploy: Path,
                                                                        photos) -> None:
    """Images added before the descriptor stage (no SSCD vector, as after migration 0005)
    are embedded when the engine loads, stored, and indexed; structure signatures are
    saved beside the local index and reconciled like it."""
    from sqlalchemy import update
    from sqlmodel import select

    from monitor.store.models import ProtectedImage

    ws = Workspace(load_settings())
    added = add_paths(ws, _gallery(deploy, photos), "c")
    with ws.session() as s:
        s.execute(update(ProtectedImage).values(descriptor_vector=None, descriptor_model=None))
        s.commit()
    (deploy / "data" / "indices" / "structure.npz").unlink()
    fresh = Workspace(load_settings())
    engine = fresh.engine()
    assert len(engine.descriptor_index) == len(added)
    assert sorted(engine.structure.ids()) == sorted(r.gallery_id for r in added)
    assert (deploy / "data" / "indices" / "structure.npz").exists()
    with fresh.session() as s:
        rows = s.exec(select(ProtectedImage)).all()
        assert all(r.descriptor_vector is not None and len(r.descriptor_vector) == 512 * 4
                   and r.descriptor_model == engine.descriptor.fingerprint for r in rows)
    rocket = next(r.gallery_id for r in added if r.path.endswith("rocket.png"))
    assert _finds(fresh, photos) == rocket
