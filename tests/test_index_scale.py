"""Retrieval indices past their flat size: DenseIndex and BinaryIndex switch to IVF, keep
answering like exact search, edit in place, and save/load (memory-mapped) round trips.

Real data: crops of the scikit-image photos give real pHash codes
(``HashStage.compute_gallery``) and real-image vectors (22×22 grey thumbnails, centred,
L2-normalised, zero-padded to 512); seeded synthetic entries (mixtures of real vectors
plus noise; real codes XOR 16-24 random bits) take the indices past a small ``flat_max``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from monitor.imaging.decode import decode_bytes
from monitor.matching.index.binary import BinaryIndex
from monitor.matching.index.dense import DenseIndex
from monitor.matching.stages.hash import HashStage
from tests.conftest import OTHERS, PHOTOS, encode, skimage_photo

CROPS = 24
"""Random crops per scikit-image photo (14 photos)."""
DIM, FLAT_MAX = 512, 2000


def _crops(seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for name in PHOTOS + OTHERS:
        im = skimage_photo(name)
        for _ in range(CROPS):
            w, h = (int(s * rng.uniform(0.5, 0.9)) for s in im.size)
            x, y = int(rng.integers(0, im.width - w)), int(rng.integers(0, im.height - h))
            out.append(im.crop((x, y, x + w, y + h)))
    return out


def _vector(im: Image.Image) -> np.ndarray:
    v = np.asarray(im.convert("L").resize((22, 22), Image.Resampling.LANCZOS), np.float32)
    v = np.concatenate([v.reshape(-1) - v.mean(), np.zeros(DIM - 22 * 22, np.float32)])
    return v / np.linalg.norm(v)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def crops() -> list[Image.Image]:
    return _crops()


@pytest.fixture(scope="module")
def dense(crops) -> tuple[np.ndarray, np.ndarray, int]:
    """``(gallery (4000, 512), copies (Q, 512) of real rows, their rows)``: real rows first."""
    rng = np.random.default_rng(1)
    real = np.stack([_vector(c) for c in crops])
    pick = rng.integers(0, len(real), (4000 - len(real), 3))
    w = rng.dirichlet(np.ones(3), len(pick)).astype(np.float32)
    mix = _unit(np.einsum("mk,mkd->md", w, real[pick]))
    noise = _unit(rng.standard_normal(mix.shape, np.float32)) * 0.5
    gallery = np.concatenate([real, _unit(mix + noise)])
    rows = rng.choice(len(real), 120, replace=False)
    edits = [ImageEnhance.Brightness(crops[r]).enhance(1.15).filter(ImageFilter.GaussianBlur(1))
             for r in rows]
    return gallery, np.stack([_vector(e) for e in edits]), rows


@pytest.fixture(scope="module")
def codes(crops) -> np.ndarray:
    """``(G, 16, 8) uint8``: real gallery pHashes of every crop, then synthetic ones."""
    stage, rng = HashStage(), np.random.default_rng(2)
    real = np.stack([stage.compute_gallery(decode_bytes(encode(c, fmt="BMP"))) for c in crops])
    base = real[rng.integers(0, len(real), 2500 - len(real))]
    masks = np.packbits(np.argsort(rng.random((len(base), 64)), 1)
                        < rng.integers(16, 25, (len(base), 1)), axis=1)
    return np.concatenate([real, base ^ masks[:, None, :]])


def _flip(code: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    b = np.unpackbits(code)
    b[rng.choice(64, bits, replace=False)] ^= 1
    return np.packbits(b)


def _brute(codes: np.ndarray, ids: np.ndarray, queries: np.ndarray, radius: int
           ) -> list[tuple[int, int]]:
    """Each id once at its smallest distance to any query, ``<= radius``, by (d, id)."""
    d = np.unpackbits(codes[None, :, :] ^ queries[:, None, :], axis=2).sum(2).min(0)
    best: dict[int, int] = {}
    for gid, dist in zip(ids.tolist(), d.tolist(), strict=True):
        if dist <= radius:
            best[gid] = min(dist, best.get(gid, dist))
    return sorted(best.items(), key=lambda kv: (kv[1], kv[0]))


def _built(gallery: np.ndarray, **kw) -> DenseIndex:
    index = DenseIndex(DIM, flat_max=FLAT_MAX, **kw)
    index.add(np.arange(len(gallery)) + 1000, gallery)
    return index


# -- dense -------------------------------------------------------------------------
def test_dense_ivf_ranks_like_exact_search(dense) -> None:
    gallery, copies, rows = dense
    flat, ivf = _built(gallery), _built(gallery, nprobe=8)
    assert flat.kind == ivf.kind == "flat"
    ivf.train()
    assert ivf.kind == "IVF64,SQ8" and len(ivf) == len(gallery) and flat.kind == "flat"
    exact = [row[0][0] for row in flat.search(copies, 5)]
    approx = [row[0][0] for row in ivf.search(copies, 5)]
    assert np.mean(np.array(exact) == rows + 1000) >= 0.9  # the copies are real copies
    assert np.mean(np.array(exact) == np.array(approx)) >= 0.97
    # queries near no entry in particular: mixtures of two real vectors plus noise
    rng = np.random.default_rng(9)
    w = rng.dirichlet(np.ones(2), 100).astype(np.float32)
    mix = np.einsum("mk,mkd->md", w, gallery[rng.integers(0, 336, (100, 2))])
    unrelated = _unit(mix + _unit(rng.standard_normal(mix.shape, np.float32)) * 0.5)
    want, got = flat.search(unrelated, 10), ivf.search(unrelated, 10)
    assert np.mean([g[0][0] == w[0][0] for g, w in zip(got, want, strict=True)]) >= 0.95
    recall = [len({i for i, _ in g} & {i for i, _ in w}) / 10
              for g, w in zip(got, want, strict=True)]
    assert np.mean(recall) >= 0.85  # 8 of 64 lists visited (0.92 measured)
    assert all(abs(g[0][1] - w[0][1]) < 0.01 for g, w in zip(got, want, strict=True)
               if g[0][0] == w[0][0])  # inner products, to SQ8 precision
    assert [s for _, s in got[0]] == sorted((s for _, s in got[0]), reverse=True)


def test_dense_never_returns_missing_labels(dense) -> None:
    gallery = dense[0]
    index = _built(gallery, nprobe=1)
    index.train()
    found = index.search(gallery[:20], 3000)  # more than one list holds
    assert all(0 < len(row) < 3000 for row in found)
    assert all(gid >= 1000 for row in found for gid, _ in row)


def test_dense_remove_after_training_edits_lists(dense) -> None:
    gallery = dense[0]
    index = _built(gallery)
    index.train()
    kind, gone = index.kind, [1000, 1001, 1002, 1500]
    assert index.remove(gone + [99]) == 4
    assert index.kind == kind and len(index) == len(gallery) - 4
    assert not set(gone) & set(index.ids().tolist())
    hits = index.search(gallery[[0, 1, 2, 500, 3]], 5)
    assert all(gid not in gone for row in hits for gid, _ in row)
    assert hits[4][0][0] == 1003
    ids, vectors = index.vectors_of([1003, 1004, 1000])
    assert ids.tolist() == [1003, 1004]
    assert np.all(np.sum(vectors * gallery[[3, 4]], axis=1) > 0.99)  # SQ8-decoded
    assert index.memory_bytes < len(index) * (DIM + 8) * 1.2 < len(index) * 4 * DIM


def test_dense_save_trains_and_load_round_trips(dense, tmp_path: Path) -> None:
    gallery, copies, _ = dense
    index = _built(gallery)
    index.save(tmp_path / "d.npz", "fp")  # past flat_max: trained on save
    assert index.kind.startswith("IVF")
    want = index.search(copies, 10)
    for mmap in (True, False):
        loaded = DenseIndex.load(tmp_path / "d.npz", "fp", DIM, mmap=mmap)
        assert loaded is not None and loaded.kind == index.kind and len(loaded) == len(index)
        assert loaded.search(copies, 10) == want
        assert np.array_equal(loaded.ids(), index.ids())
    assert DenseIndex.load(tmp_path / "d.npz", "fp", None).dim == DIM
    assert DenseIndex.load(tmp_path / "d.npz", "other", DIM) is None
    assert DenseIndex.load(tmp_path / "d.npz", "fp", 256) is None
    assert DenseIndex.load(tmp_path / "missing.npz", "fp", DIM) is None


@pytest.mark.parametrize("trained", [False, True])
def test_dense_add_and_remove_after_mmap_load_persist(dense, tmp_path: Path,
                                                      trained: bool) -> None:
    gallery = dense[0]
    index = _built(gallery[:1500] if not trained else gallery)
    index.save(tmp_path / "d.npz", "fp")
    assert (index.kind == "flat") != trained
    loaded = DenseIndex.load(tmp_path / "d.npz", "fp", DIM, mmap=True)
    new = _unit(np.random.default_rng(5).standard_normal((2, DIM), np.float32))
    loaded.add(np.array([7, 8]), new)
    assert loaded.remove([1000]) == 1
    assert [row[0][0] for row in loaded.search(new, 1)] == [7, 8]
    loaded.save(tmp_path / "d.npz", "fp")
    again = DenseIndex.load(tmp_path / "d.npz", "fp", DIM)
    assert [row[0][0] for row in again.search(new, 1)] == [7, 8]
    assert 1000 not in again.ids() and len(again) == len(index) + 1
    assert len(list(tmp_path.glob("d.npz.*.faiss"))) == 1  # the older data file is gone


def test_dense_mapped_index_survives_its_file_being_replaced(dense, tmp_path: Path) -> None:
    gallery = dense[0]
    index = _built(gallery)
    index.save(tmp_path / "d.npz", "fp")
    loaded = DenseIndex.load(tmp_path / "d.npz", "fp", DIM)
    DenseIndex(DIM).save(tmp_path / "d.npz", "fp")  # deletes the file `loaded` maps
    loaded.add(np.array([7]), gallery[:1])  # copied from the mapping, not re-read
    assert len(loaded) == len(gallery) + 1
    assert {g for g, _ in loaded.search(gallery[:1], 2)[0]} == {7, 1000}


# -- binary ------------------------------------------------------------------------
def test_binary_flat_distances_are_exact(codes) -> None:
    rng = np.random.default_rng(3)
    flat_codes, ids = codes.reshape(-1, 8), np.repeat(np.arange(len(codes)), 16)
    index = BinaryIndex(8, flat_max=10 ** 9)
    index.add(ids, flat_codes)
    assert index.kind == "flat" and len(index) == len(codes) and index.ncodes == len(ids)
    for _ in range(40):
        src = int(rng.integers(0, 336))
        q = _flip(codes[src, int(rng.integers(0, 16))], int(rng.integers(0, 13)), rng)
        want = _brute(flat_codes, ids, q[None, :], 12)
        assert index.search(q, 12) == want and (src, want[0][1]) in want
        assert index.search(q, 12, limit=3) == want[:3]
        pair = np.stack([q, codes[int(rng.integers(0, len(codes))), 0]])
        assert index.search_many(pair, 12, limit=5) == _brute(flat_codes, ids, pair, 12)[:5]
    assert index.search(codes[0, 0], -1) == [] and index.search_many(codes[:0, 0], 3) == []


def test_binary_ivf_recall_against_brute_force(codes) -> None:
    rng = np.random.default_rng(4)
    flat_codes, ids = codes.reshape(-1, 8), np.repeat(np.arange(len(codes)), 16)
    index = BinaryIndex(8, flat_max=FLAT_MAX, nprobe=128)
    index.add(ids, flat_codes)
    index.train()
    assert index.kind == "BIVF1024" and index.ncodes == len(ids)
    found = total = 0
    for _ in range(200):
        q = _flip(codes[int(rng.integers(0, 336)), 0], int(rng.integers(0, 13)), rng)
        want = dict(_brute(flat_codes, ids, q[None, :], 12))
        got = dict(index.search(q, 12))
        assert all(want[g] == d for g, d in got.items())  # exact distances, no strays
        found, total = found + len(want.keys() & got.keys()), total + len(want)
    assert found / total >= 0.95


def test_binary_remove_and_mmap_round_trip(codes, tmp_path: Path) -> None:
    flat_codes, ids = codes.reshape(-1, 8), np.repeat(np.arange(len(codes)), 16)
    index = BinaryIndex(8, flat_max=FLAT_MAX)
    index.add(ids, flat_codes)
    index.save(tmp_path / "h.npz", "fp")
    kind = index.kind
    assert kind.startswith("BIVF")
    assert index.remove([3, 4, 99_999]) == 32 and index.kind == kind
    assert [g for g, _ in index.search(codes[3, 0], 0)] == []
    loaded = BinaryIndex.load(tmp_path / "h.npz", "fp")
    assert loaded is not None and loaded.kind == kind and len(loaded) == len(codes)
    assert loaded.search(codes[3, 0], 0)[0] == (3, 0)
    assert loaded.search_many(codes[5, :2], 8) == index.search_many(codes[5, :2], 8)
    loaded.add(np.full(16, 50_000), codes[3])
    loaded.remove([3])
    loaded.save(tmp_path / "h.npz", "fp")
    again = BinaryIndex.load(tmp_path / "h.npz", "fp", mmap=False)
    assert again.search(codes[3, 0], 0) == [(50_000, 0)] and 3 not in again.ids()
    assert np.array_equal(np.sort(again.codes, axis=0),
                          np.sort(np.concatenate([np.delete(flat_codes, np.s_[48:64], 0),
                                                  codes[3]]), axis=0))
    assert BinaryIndex.load(tmp_path / "h.npz", "other") is None
    assert BinaryIndex.load(tmp_path / "h.npz", "fp", nbytes=32) is None


def test_mapped_flat_index_trains_at_save_and_empty_indices_round_trip(dense, tmp_path: Path
                                                                       ) -> None:
    gallery = dense[0]
    _built(gallery[:1500]).save(tmp_path / "d.npz", "fp")
    loaded = DenseIndex.load(tmp_path / "d.npz", "fp", DIM, flat_max=1000)
    assert loaded.kind == "flat"
    loaded.save(tmp_path / "d.npz", "fp")  # trained from the mapped vectors
    assert loaded.kind == "IVF32,SQ8"
    assert DenseIndex.load(tmp_path / "d.npz", "fp", DIM).search(gallery[5:6], 1)[0][0][0] == 1005
    DenseIndex(DIM).save(tmp_path / "e.npz", "fp")
    BinaryIndex().save(tmp_path / "b.npz", "fp")
    empty, hashes = DenseIndex.load(tmp_path / "e.npz", "fp", DIM), BinaryIndex.load(
        tmp_path / "b.npz", "fp")
    assert len(empty) == len(hashes) == 0 and empty.search(gallery[:2], 3) == [[], []]
    assert hashes.search(np.zeros(8, np.uint8), 64) == []
    hashes.add(np.array([4, 4]), np.zeros((2, 8), np.uint8))
    assert hashes.search_many(np.zeros((2, 8), np.uint8), 0) == [(4, 0)] and len(hashes) == 1
