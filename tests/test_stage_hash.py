"""Stage hash: dihedral gallery variants find flips and turns; unrelated images stay far."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from monitor.imaging.decode import decode_bytes
from monitor.matching.index.binary import BinaryIndex
from monitor.matching.stages.hash import HashStage
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


def _imagehash_bits(im: Image.Image) -> np.ndarray:
    import imagehash

    return imagehash.phash(im).hash.reshape(-1)


def test_low_dct_is_scipys_dct_ii() -> None:
    import scipy.fftpack

    from monitor.matching.stages.hash import low_dct

    grey = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(np.uint8)
    ref = scipy.fftpack.dct(scipy.fftpack.dct(grey, axis=0), axis=1)[:8, :8]
    assert np.allclose(low_dct(grey), ref, rtol=0, atol=1e-8)


def test_phash_bits_are_imagehash_bits(photos, others) -> None:
    """The numpy pHash gives imagehash's 64 bits on real photos, their 128-px working
    copies and all their dihedral transforms (what the gallery stores)."""
    from monitor.matching.stages.hash import DIHEDRAL, HASH_SIDE, phash_bits

    checked = 0
    for im in [*photos.values(), *others.values()]:
        small = im.copy()
        small.thumbnail((HASH_SIDE, HASH_SIDE))
        for base in (im, small):
            for t in DIHEDRAL:
                v = base if t is None else base.transpose(t)
                assert np.array_equal(phash_bits(v), _imagehash_bits(v))
                checked += 1
    assert checked == 2 * 8 * 14


def test_phash_ties_follow_imagehash() -> None:
    """Mirror-symmetric and flat images put exact ties at the median, where float
    rounding alone decides imagehash's bits; those are taken from imagehash itself."""
    from monitor.matching.stages.hash import phash_bits

    half = np.random.default_rng(1).integers(0, 256, (64, 32, 3)).astype(np.uint8)
    images = [Image.fromarray(np.concatenate([half, half[:, ::-1]], axis=1)),
              Image.new("RGB", (50, 40), (200, 30, 30)),
              Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)))]
    for im in images:
        assert np.array_equal(phash_bits(im), _imagehash_bits(im))


def test_compute_and_gallery_codes_are_imagehash_of_the_reduced_copies(photos) -> None:
    from monitor.matching.stages.hash import DIHEDRAL, HASH_SIDE

    stage = HashStage()
    pad = Image.new("RGB", (900, 700), (255, 255, 255))
    pad.paste(photos["chelsea"].resize((451, 300)), (200, 150))
    for im in (photos["astronaut"], pad):
        d = _dec(im, fmt="PNG")
        trimmed, whole = d.trimmed(HASH_SIDE)[0], d.scaled(HASH_SIDE)
        want = np.packbits(np.stack([_imagehash_bits(trimmed), _imagehash_bits(whole)])
                           .astype(np.uint8), axis=-1)
        assert np.array_equal(stage.compute(d), want)
        gallery = [_imagehash_bits(s if t is None else s.transpose(t))
                   for s in (trimmed, whole) for t in DIHEDRAL]
        assert np.array_equal(stage.compute_gallery(d),
                              np.packbits(np.stack(gallery).astype(np.uint8), axis=-1))
