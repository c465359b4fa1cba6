"""Engine: stages merged per gallery image; pHash hits carry the dense check."""

from __future__ import annotations

from dataclasses import replace

from PIL import Image, ImageEnhance

from monitor.config import Settings
from monitor.matching.engine import Engine, GalleryEntry
from monitor.matching.stages.hash import HashStage
from tests.test_stage_local import _decode, _rgb

NAMES = ("astronaut", "coffee", "rocket")


def gallery_engine(settings: Settings, names: tuple[str, ...] = NAMES) -> Engine:
    """An engine with ``names`` (skimage photos) as gallery images 0, 1, ... . They get no
    SSCD vectors, so the keypoint vote is on, as ``vote = "auto"`` has it without SSCD."""
    if settings.local.vote == "auto":
        settings = settings.model_copy(update={"local": settings.local.model_copy(
            update={"vote": "on"})})
    engine, hasher = Engine(settings), HashStage()
    for gid, name in enumerate(names):
        image = _decode(_rgb(name))
        engine.add(GalleryEntry(gid, hasher.compute_gallery(image), None, lambda i=image: i),
                   image)
    return engine


def _engine(local: bool = True) -> Engine:
    return gallery_engine(Settings(clip={"enabled": False}, local={"enabled": local}))


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



def _striped(name: str, size: tuple[int, int] = (480, 320)) -> Image.Image:
    """A real photo averaged along its rows: horizontal stripes (a one-dimensional image,
    like a striped flag), whose pHash ties at the median."""
    import numpy as np

    rows = np.asarray(_rgb(name).convert("RGB").resize(size), np.float32).mean(axis=1)
    return Image.fromarray(np.repeat(rows[None, :, :], size[1], axis=0).astype(np.uint8)
                           .transpose(1, 0, 2))


def test_degenerate_codes_need_the_dense_check() -> None:
    from monitor.matching.stages.hash import informative

    blank, stripes = Image.new("RGB", (400, 300), "white"), _striped("coffee")
    hasher = HashStage()
    assert not informative(hasher.compute(_decode(blank))).any()
    assert not informative(hasher.compute(_decode(stripes))).any()
    assert informative(hasher.compute(_decode(_rgb("coffee")))).all()
    for local in (False, True):
        engine = _engine(local)
        image = _decode(blank)
        engine.add(GalleryEntry(9, hasher.compute_gallery(image), None, lambda i=image: i), image)
        # another flat image collides at 0 bits, but a flat pair proves nothing
        assert engine.match(_decode(Image.new("RGB", (640, 200), (250, 250, 250)))) == []
    engine = _engine(local=True)
    image = _decode(stripes)
    engine.add(GalleryEntry(9, hasher.compute_gallery(image), None, lambda: image), image)
    # a re-encoded, smaller copy of the striped image is still found: the dense check agrees
    copy = _decode(stripes.resize((240, 160)))
    hit = engine.match(copy)[0].evidence("hash")
    assert hit is not None and hit.gallery_id == 9 and hit.agreement >= 0.7


def test_weak_homography_flags_only_with_dense_agreement(tmp_path) -> None:
    """A weak homography (under ``local.min_inliers``, here 40) flags through a
    corroborated table of inliers and dense agreement, as the default rules' 6 inliers at
    0.9 does; the same hit with its agreement lowered does not."""
    from monitor.matching.rules import RuleSet, load_rules
    from tests.test_stage_local import _small_turned

    (tmp_path / "r.toml").write_text(
        '[[rule]]\nname="copy"\nlocal_min_inliers=40\n'
        '[[rule.corroborated]]\nlocal_min_inliers=6\nmin_agreement=0.9\n')
    rules = RuleSet(load_rules(tmp_path))
    engine = gallery_engine(Settings(clip={"enabled": False}, local={"min_inliers": 40}))
    top = engine.match(_small_turned(_rgb("rocket"), 100, 20))[0]
    assert top.gallery_id == NAMES.index("rocket") and 6 <= top.inliers < 40
    outcome = rules.judge(top, "art", "x.jpg")
    assert outcome is not None and outcome.rule == "copy"
    weak = replace(top, hits=tuple(replace(h, agreement=0.85) for h in top.hits))
    assert rules.judge(weak, "art", "x.jpg") is None


def test_default_rule_is_the_calibrated_confidence() -> None:
    """The shipped "copy" rule flags on the match's confidence alone, at the operating point
    the confidence data file was written with; a weak homography flags exactly when its
    evidence together reaches it."""
    from monitor.matching import confidence
    from monitor.matching.rules import RuleSet, load_rules
    from monitor.types import Hit, Match
    from tests.test_rules import DEFAULTS

    rules = RuleSet(load_rules(DEFAULTS))
    copy = next(r for r in rules.rules if r.name == "copy")
    assert copy.min_confidence == confidence.model().provenance["min_confidence"]
    assert copy.configured() == 1

    def judged(inliers: int, agreement: float) -> tuple[bool, float]:
        hits = (Hit("local", 0, 0.4, inliers=inliers, agreement=agreement),)
        score = confidence.confidence(hits)
        return rules.judge(Match(0, "local", score, hits), "art", "x.jpg") is not None, score

    for inliers, agreement in ((5, 0.5), (7, 0.95), (10, 0.6), (40, 0.9)):
        flagged, score = judged(inliers, agreement)
        assert flagged == (score >= copy.min_confidence), (inliers, agreement, score)
    assert judged(40, 0.95)[0] and not judged(4, 0.3)[0]


def test_wide_hash_hits_are_judged_on_more_cells() -> None:
    """A pHash hit more than ``WIDE_BITS`` off has its dense agreement judged on at least
    ``WIDE_MIN_CELLS`` textured cells: a flag of two fields (textured only along the
    line between them, 8 cells) agrees with itself, but counts only as a near hit;
    a photo, textured everywhere, keeps its agreement at any distance."""
    from monitor.matching.hash_evidence import WIDE_BITS
    from monitor.types import Hit

    card = Image.new("RGB", (480, 320), (20, 60, 160))
    card.paste((230, 200, 30), (250, 0, 480, 320))
    engine, hasher = _engine(), HashStage()
    image = _decode(card)
    engine.add(GalleryEntry(9, hasher.compute_gallery(image), None, lambda: image), image)

    def agreements(candidate: Image.Image, gid: int) -> list[float | None]:
        hits = [Hit("hash", gid, 0.7, distance=d) for d in (WIDE_BITS, WIDE_BITS + 2)]
        judged = engine.evidence.with_agreement(_decode(candidate), engine.local, hits)
        return [h.agreement for h in judged]

    near, wide = agreements(card, 9)
    assert near is not None and near >= 0.9 and wide is None
    near, wide = agreements(_rgb("coffee"), NAMES.index("coffee"))
    assert near is not None and near >= 0.9 and wide == near
