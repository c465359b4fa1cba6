"""Engine: stages merged per gallery image; pHash hits carry the dense check."""

from __future__ import annotations

from PIL import Image, ImageEnhance

from monitor.config import Settings
from monitor.engine import Engine, GalleryEntry
from monitor.stages.hash import HashStage
from tests.test_stage_local import _decode, _rgb

NAMES = ("astronaut", "coffee", "rocket")


def _engine(local: bool = True) -> Engine:
    settings = Settings(clip={"enabled": False}, local={"enabled": local})
    engine, hasher = Engine(settings), HashStage()
    for gid, name in enumerate(NAMES):
        image = _decode(_rgb(name))
        engine.add(GalleryEntry(gid, hasher.compute_gallery(image), None, lambda i=image: i),
                   image)
    return engine


def test_hash_hits_carry_aligned_agreement() -> None:
    engine = _engine()
    # a turned, recoloured copy: the pHash matches a dihedral variant
    edited = ImageEnhance.Color(_rgb("coffee").transpose(Image.Transpose.ROTATE_270)).enhance(0.3)
    matches = engine.match(_decode(edited))
    top = matches[0]
    assert top.gallery_id == NAMES.index("coffee")
    hit = top.evidence("hash")
    assert hit is not None and hit.agreement is not None and hit.agreement >= 0.9
    assert top.agreement == max(h.agreement for h in top.hits if h.agreement is not None)


def test_stranger_unmatched_and_hash_only_engine_has_no_agreement() -> None:
    assert _engine().match(_decode(_rgb("camera"))) == []
    hash_only = _engine(local=False)
    top = hash_only.match(_decode(_rgb("rocket")))[0]
    assert top.stage == "hash" and top.distance == 0 and top.agreement is None

