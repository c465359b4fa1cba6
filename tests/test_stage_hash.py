"""Stage hash: dihedral gallery variants find flips and turns; unrelated images stay far."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from monitor.decode import decode_bytes
from monitor.index.binary import BinaryIndex
from monitor.stages.hash import HashStage
from tests.conftest import encode


def _dec(im: Image.Image, **kw):
    return decode_bytes(encode(im, **kw))


def test_dihedral_copies_and_reencodes_hit(photos, others) -> None:
    stage, index = HashStage(max_distance=10), BinaryIndex()
    names = sorted(photos)
    for gid, name in enumerate(names):
        codes = stage.compute_gallery(_dec(photos[name], fmt="PNG"))
        assert codes.shape == (16, 8)
        index.add(np.full(len(codes), gid), codes)
    for gid, name in enumerate(names):
        im = photos[name]
        edits = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                 im.transpose(Image.Transpose.ROTATE_90),
                 im.resize((im.width // 3, im.height // 3)), im.convert("L").convert("RGB")]
        for edit in edits:
            hits = stage.search(stage.compute(_dec(edit, quality=40)), index)
            assert hits and hits[0].gallery_id == gid and hits[0].distance <= 10, name
            assert 0.6 < hits[0].score <= 1.0
    for name, im in others.items():
        hits = stage.search(stage.compute(_dec(im)), index)
        assert all(h.distance > 6 for h in hits), name


def test_range_is_inclusive_and_ids_deduplicated() -> None:
    index = BinaryIndex()
    base = np.zeros(8, np.uint8)
    variants = np.stack([base] * 8)
    variants[1, 0] = 0b00000111  # 3 bits away
    index.add(np.full(8, 42), variants)
    code = base.copy()
    code[7] = 0b00001111  # 4 bits from the identity, 7 from variant 1
    assert index.search(code, 4) == [(42, 4)]
    assert index.search(code, 3) == []


def test_save_load_and_stale(tmp_path: Path) -> None:
    index = BinaryIndex()
    index.add(np.array([1, 2]), np.arange(16, dtype=np.uint8).reshape(2, 8))
    index.save(tmp_path / "h.npz", "fp1")
    loaded = BinaryIndex.load(tmp_path / "h.npz", "fp1")
    assert loaded is not None and np.array_equal(loaded.codes, index.codes)
    assert BinaryIndex.load(tmp_path / "h.npz", "fp2") is None
    assert BinaryIndex.load(tmp_path / "missing.npz", "fp1") is None
    loaded.remove([1])
    assert len(loaded) == 1 and loaded.search(index.codes[1], 0) == [(2, 0)]
