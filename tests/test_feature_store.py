"""FeatureStore on real gallery features (``skimage.data`` photos): round trips that still
verify, append-only saves, removal and compaction, stale and corrupt files, refresh."""

from __future__ import annotations

import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import monitor.matching.index.base as base
import monitor.matching.index.features as features_mod
from monitor.config import LocalSettings
from monitor.imaging.decode import DecodedImage, decode_bytes
from monitor.matching.index.features import FeatureStore, GalleryRecord
from monitor.matching.index.records import decode_record, encode_record
from monitor.matching.stages.local import LocalStage
from monitor.matching.stages.structure import gallery_signature
from tests.conftest import encode, skimage_photo

NAMES = {1: "astronaut", 2: "coffee", 3: "chelsea"}
FP = "fp-test"


def _decode(im: Image.Image) -> DecodedImage:
    return decode_bytes(encode(im, "PNG"))


@pytest.fixture(scope="module")
def stage() -> LocalStage:
    return LocalStage(LocalSettings())


@pytest.fixture(scope="module")
def records(stage: LocalStage) -> dict[int, GalleryRecord]:
    out = {}
    for gid, name in NAMES.items():
        image = _decode(skimage_photo(name))
        out[gid] = GalleryRecord(stage.compute(image, gallery=True), gallery_signature(image))
    return out


def _assert_same(a: GalleryRecord | None, b: GalleryRecord) -> None:
    assert a is not None
    for x, y in ((a.signature, b.signature),):
        assert (x is None) == (y is None)
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
    fa, fb = a.features, b.features
    assert (fa is None) == (fb is None)
    if fa is None:
        return
    for name in ("keypoints", "descriptors", "image", "colour"):
        x, y = getattr(fa, name), getattr(fb, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert np.array_equal(x, y), name
    assert fa.size == fb.size and fa.scale == fb.scale and fa.offset == fb.offset
    assert fa.original == fb.original and fa.mirror is None


def _pack(folder: Path) -> Path:
    packs = sorted(folder.glob("features-*.pack"))
    assert len(packs) == 1, packs
    return packs[0]


def _saved(folder: Path, recs: dict[int, GalleryRecord], ids: list[int]) -> FeatureStore:
    store = FeatureStore(folder, FP)
    for gid in ids:
        store.add(gid, recs[gid])
    store.save()
    return store


def test_round_trip_real_features_still_verify(tmp_path, stage, records) -> None:
    _saved(tmp_path, records, [1, 2, 3])
    store = FeatureStore.open(tmp_path, FP)
    assert not store.reset and len(store) == 3 and store.ids() == [1, 2, 3]
    for gid, rec in records.items():
        _assert_same(store.get(gid), rec)
        assert np.array_equal(store.signature(gid), rec.signature)
    sizes = {NAMES[g]: len(encode_record(r)) for g, r in records.items()}
    print(f"\nbytes per record: {sizes}; pack {_pack(tmp_path).stat().st_size} B, "
          f"store {store.disk_bytes} B for {len(store)} records")
    assert all(20_000 < n < 200_000 for n in sizes.values())
    # a resized crop of the astronaut verifies identically against the reloaded view
    im = skimage_photo("astronaut").crop((40, 30, 470, 480)).resize((344, 360))
    query = stage.compute(_decode(im))
    before = stage.verify(query, records[1].features, 1, im.size)
    after = stage.verify(query, store.features(1)[0], 1, im.size)
    assert before is not None and after is not None
    assert before.inliers == after.inliers and before.inliers >= 20
    assert before.quad == after.quad and before.agreement == after.agreement
    assert store.features(99) == [] and store.get(99) is None and 99 not in store


def test_add_after_reopen_appends(tmp_path, records) -> None:
    _saved(tmp_path, records, [1, 2])
    pack = _pack(tmp_path)
    old = pack.read_bytes()
    store = FeatureStore.open(tmp_path, FP)
    store.add(3, records[3])
    assert 3 in store and store.original_size(3) == records[3].features.original
    store.save()
    assert _pack(tmp_path) == pack
    new = pack.read_bytes()
    assert len(new) == len(old) + len(encode_record(records[3]))
    assert new[:len(old)] == old
    again = FeatureStore.open(tmp_path, FP)
    assert again.ids() == [1, 2, 3]
    for gid in (1, 2, 3):
        _assert_same(again.get(gid), records[gid])


def test_replace_keeps_latest(tmp_path, records) -> None:
    store = _saved(tmp_path, records, [1, 2])
    store.add(1, records[3])
    _assert_same(store.get(1), records[3])  # pending shadows the saved one
    store.save()
    again = FeatureStore.open(tmp_path, FP)
    assert again.ids() == [1, 2]
    _assert_same(again.get(1), records[3])
    assert again.dead_share == pytest.approx(
        len(encode_record(records[1])) / _pack(tmp_path).stat().st_size)


def test_remove_then_compact_keeps_old_readers(tmp_path, records) -> None:
    _saved(tmp_path, records, [1, 2, 3])
    writer = FeatureStore.open(tmp_path, FP)
    writer.remove([2, 42])
    writer.save()
    reader = FeatureStore.open(tmp_path, FP)
    assert reader.ids() == [1, 3] and 2 not in reader and reader.get(2) is None
    _assert_same(reader.get(3), records[3])
    old_pack, old_size = _pack(tmp_path), _pack(tmp_path).stat().st_size
    live = sum(len(encode_record(records[g])) for g in (1, 3))
    assert writer.dead_share == pytest.approx(1 - live / old_size)

    writer.compact()
    new_pack = _pack(tmp_path)
    assert new_pack != old_pack and not old_pack.exists()
    assert new_pack.stat().st_size == live and writer.dead_share == 0
    # the reader still maps the unlinked old pack
    _assert_same(reader.get(1), records[1])
    assert reader.refresh() and not reader.refresh()
    _assert_same(reader.get(1), records[1])
    _assert_same(FeatureStore.open(tmp_path, FP).get(3), records[3])


def test_save_compacts_past_thresholds(tmp_path, records, monkeypatch) -> None:
    store = _saved(tmp_path, records, [1, 2, 3])
    first = _pack(tmp_path)
    store.remove([1, 2])
    monkeypatch.setattr(features_mod, "COMPACT_DEAD_BYTES", 0)
    store.save()
    assert _pack(tmp_path) != first and store.dead_share == 0
    assert _pack(tmp_path).stat().st_size == len(encode_record(records[3]))
    _assert_same(FeatureStore.open(tmp_path, FP).get(3), records[3])


def test_stale_stores_reset(tmp_path, records, monkeypatch) -> None:
    _saved(tmp_path / "a", records, [1])
    other = FeatureStore.open(tmp_path / "a", "another-fingerprint")
    assert other.reset and len(other) == 0 and other.get(1) is None
    assert FeatureStore.open(tmp_path / "missing", FP).reset
    monkeypatch.setattr(base, "FORMAT_VERSION", base.FORMAT_VERSION + 1)
    _saved(tmp_path / "b", records, [1])
    monkeypatch.undo()
    old = FeatureStore.open(tmp_path / "b", FP)
    assert old.reset and len(old) == 0
    # the reset store's first save replaces the stale pack
    stale = _pack(tmp_path / "b")
    old.add(2, records[2])
    old.save()
    assert not stale.exists() and FeatureStore.open(tmp_path / "b", FP).ids() == [2]
    assert not FeatureStore.open(tmp_path / "a", FP).reset


def test_corrupt_or_truncated_record_names_gallery_id(tmp_path, records) -> None:
    _saved(tmp_path, records, [1, 2])
    pack, first = _pack(tmp_path), len(encode_record(records[1]))
    data = bytearray(pack.read_bytes())
    data[first + 5000] ^= 0xFF
    pack.write_bytes(bytes(data))
    store = FeatureStore.open(tmp_path, FP)
    with pytest.raises(ValueError, match=r"gallery id 2 is corrupt.*CRC"):
        store.get(2)
    _assert_same(store.get(1), records[1])
    with open(pack, "r+b") as fh:
        fh.truncate(first + 100)
    store = FeatureStore.open(tmp_path, FP)
    with pytest.raises(ValueError, match="gallery id 2 is truncated"):
        store.features(2)
    _assert_same(store.get(1), records[1])


def test_decode_validates_header(records) -> None:
    blob = bytearray(encode_record(records[2]))
    # keypoints shape (N, 2) → (N + 1, 2) with a matching CRC: sizes no longer add up
    at = blob.index(b"keypoints") + len("keypoints") + 1 + 3 + 1
    n = struct.unpack_from("<q", blob, at)[0]
    assert n == len(records[2].features)
    struct.pack_into("<q", blob, at, n + 1)
    struct.pack_into("<I", blob, 4, zlib.crc32(blob[8:]))
    with pytest.raises(ValueError, match="arrays need"):
        decode_record(bytes(blob))
    with pytest.raises(ValueError, match="shorter than its header"):
        decode_record(bytes(blob[:20]))
    with pytest.raises(ValueError, match="magic"):
        decode_record(b"XXXX" + bytes(blob[4:]))


def test_memory_mode(records) -> None:
    store = FeatureStore()
    sig_only = GalleryRecord(None, records[1].signature)
    store.add(1, records[1])
    store.add(2, sig_only)
    store.add(3, GalleryRecord(records[3].features, None))
    assert len(store) == 3 and store.ids() == [1, 2, 3]
    _assert_same(store.get(1), records[1])
    _assert_same(store.get(2), sig_only)
    assert store.get(3).signature is None and store.signature(3) is None
    assert store.features(2) == [] and store.feature_size(2) is None
    assert store.original_size(2) is None
    assert store.disk_bytes == sum(len(encode_record(r)) for r in
                                   (records[1], sig_only, GalleryRecord(records[3].features,
                                                                        None)))
    store.save()
    store.compact()
    assert not store.refresh()
    store.remove([1, 7])
    assert store.ids() == [2, 3] and store.get(1) is None
    for gid in range(100, 100 + features_mod.CACHE_RECORDS + 10):
        store.add(gid, sig_only)
        store.get(gid)
    assert store.cached_records == features_mod.CACHE_RECORDS


def test_sizes_come_from_the_table(tmp_path, records) -> None:
    _saved(tmp_path, records, [1, 2, 3])
    store = FeatureStore.open(tmp_path, FP)
    for gid, rec in records.items():
        assert store.original_size(gid) == rec.features.original
        assert store.feature_size(gid) == rec.features.size
    assert store.original_size(5) is None and store.feature_size(5) is None
    assert store.cached_records == 0
    store.get(2)
    store.get(2)
    assert store.cached_records == 1


def test_refresh_sees_other_instance(tmp_path, records) -> None:
    writer = _saved(tmp_path, records, [1])
    reader = FeatureStore.open(tmp_path, FP)
    assert not reader.refresh() and reader.ids() == [1]
    writer.add(2, records[2])
    writer.save()
    assert 2 not in reader
    assert reader.refresh() and reader.ids() == [1, 2]
    _assert_same(reader.get(2), records[2])
    writer.remove([1])
    writer.save()
    assert reader.refresh() and reader.ids() == [2]


def test_parallel_reads(tmp_path, records) -> None:
    _saved(tmp_path, records, [1, 2, 3])
    store = FeatureStore.open(tmp_path, FP)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                for gid in (1, 2, 3):
                    assert np.array_equal(store.get(gid).features.descriptors,
                                          records[gid].features.descriptors)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
