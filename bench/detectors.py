"""Detectors compared by :mod:`bench.accuracy`, all behind one small interface.

Each detector indexes gallery images (``add``) and answers a decoded query with
predictions ``[(gallery_id, score)]`` best first (``query``). Scores only need to
*order* predictions (DISC21 µAP and thresholds are rank based):

* ``phash``: imagehash pHash (64 bits; Zauner 2010) brute force over the gallery,
  identity hash only; score = -Hamming distance (bits).
* ``pdq``: PDQ (Meta ThreatExchange, 256 bits, via ``pdqhash``); the gallery holds
  the 8 dihedral hashes; score = -(minimum Hamming distance) (bits).
* ``engine:*``: the product's :class:`monitor.matching.engine.Engine` with some stages on.
  ``hash``: score = -distance (bits, within ``hash.max_distance``); ``local``:
  score = RANSAC inliers; ``product``: the match's calibrated confidence (all its
  hits' evidence, :mod:`monitor.matching.confidence`, in [0, 1]) rounded to 1e-6, ties broken
  by inliers (``+ inliers * 1e-10``).

Every detector sees the same :class:`~monitor.imaging.decode.DecodedImage` as the product
(EXIF, alpha on white, working copy of at most ``decode.work_side`` pixels).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from monitor.config import Settings
from monitor.imaging.decode import DecodedImage
from monitor.matching.engine import Engine, GalleryEntry
from monitor.matching.rules import Rule
from monitor.matching.stages.hash import HashStage
from monitor.types import Match

TOP_K = 5
"""Predictions kept per query for the brute-force hash baselines (for µAP)."""

_POP8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def fresh(image: DecodedImage) -> DecodedImage:
    """A copy of ``image`` with an empty resize cache, so each detector pays its own resizes."""
    return dataclasses.replace(image, _cache={})


def _hamming(codes: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Hamming distances (bits) between packed ``(N, B) uint8`` codes and one ``(B,)`` code."""
    return _POP8[np.bitwise_xor(codes, code)].sum(axis=1, dtype=np.int32)


def _nearest(ids: np.ndarray, dist: np.ndarray, k: int = TOP_K) -> list[tuple[int, float]]:
    """Per gallery id the minimum distance; the ``k`` nearest as ``(id, -distance)``."""
    best: dict[int, int] = {}
    for gid, d in zip(ids.tolist(), dist.tolist(), strict=True):
        if d < best.get(gid, 1 << 30):
            best[gid] = d
    ranked = sorted(best.items(), key=lambda kv: (kv[1], kv[0]))[:k]
    return [(gid, -float(d)) for gid, d in ranked]


class PhashBrute:
    """imagehash pHash, identity gallery hash, exhaustive Hamming search."""

    name = "phash (imagehash)"

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._codes: list[np.ndarray] = []

    @staticmethod
    def _code(image: DecodedImage) -> np.ndarray:
        import imagehash

        return np.packbits(imagehash.phash(image.image).hash.reshape(-1).astype(np.uint8))

    def add(self, gallery_id: int, image: DecodedImage) -> None:
        """Index one gallery image."""
        self._ids.append(gallery_id)
        self._codes.append(self._code(image))

    def query(self, image: DecodedImage) -> list[tuple[int, float]]:
        """The ``TOP_K`` nearest gallery images, score = -distance (bits of 64)."""
        return _nearest(np.array(self._ids), _hamming(np.stack(self._codes), self._code(image)))


class PdqDihedral:
    """PDQ hashes; 8 dihedral variants per gallery image, one hash per query."""

    name = "pdq dihedral"

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._codes: list[np.ndarray] = []

    def add(self, gallery_id: int, image: DecodedImage) -> None:
        """Index the 8 dihedral PDQ hashes of one gallery image."""
        import pdqhash

        hashes, _ = pdqhash.compute_dihedral(np.asarray(image.image))
        self._ids += [gallery_id] * len(hashes)
        self._codes += [np.packbits(h.astype(np.uint8)) for h in hashes]

    def query(self, image: DecodedImage) -> list[tuple[int, float]]:
        """The ``TOP_K`` nearest gallery images, score = -distance (bits of 256)."""
        import pdqhash

        code, _ = pdqhash.compute(np.asarray(image.image))
        return _nearest(np.array(self._ids),
                        _hamming(np.stack(self._codes), np.packbits(code.astype(np.uint8))))


def product_score(match: Match) -> float:
    """Ordering score of a product match: calibrated confidence, then inliers (module doc)."""
    return round(match.score, 6) + min(match.inliers or 0, 9999) * 1e-10


class EngineDetector:
    """The product's engine with the stages ``settings`` enables.

    ``kind`` selects the score: ``"hash"`` (-distance), ``"local"`` (inliers),
    ``"sscd"`` (raw SSCD cosine), ``"sscd_norm"`` (score-normalised SSCD similarity) or
    ``"product"`` (:func:`product_score`). ``last`` keeps the matches of the last
    query for the rules and for failure analysis.
    """

    def __init__(self, name: str, kind: str, engine: Engine) -> None:
        self.name, self.kind, self.engine = name, kind, engine
        self.last: list[Match] = []

    def add(self, gallery_id: int, image: DecodedImage) -> None:
        """Index one gallery image in the engine (hash, descriptor and local when enabled)."""
        phash = HashStage().compute_gallery(image)
        described = self.engine.describe([image])
        self.engine.add(GalleryEntry(gallery_id, phash, None, lambda: image,
                                     None if described is None else described[0]), image)

    def score(self, match: Match) -> float | None:
        """This detector's score for ``match``; None when the stage gave no evidence."""
        if self.kind == "hash":
            return None if match.distance is None else -float(match.distance)
        if self.kind == "local":
            return None if match.inliers is None else float(match.inliers)
        if self.kind == "sscd":
            return match.similarity
        if self.kind == "sscd_norm":
            return match.normalised
        return product_score(match)

    def query(self, image: DecodedImage) -> list[tuple[int, float]]:
        """Every match the engine returns, as ``(gallery_id, score)`` best first."""
        self.last = self.engine.match(image)
        preds = [(m.gallery_id, s) for m in self.last if (s := self.score(m)) is not None]
        return sorted(preds, key=lambda p: -p[1])


def rules_flag(matches: list[Match], rules: list[Rule]) -> Match | None:
    """What ``monitor check`` flags: the best-scoring match satisfying any rule, or None.

    ``matches`` come best first from :meth:`Engine.match`; all rules are in scope
    (default rules use ``collections = ["*"]``) and nothing is allow-listed.
    """
    return next((m for m in matches if any(r.satisfied_by(m) for r in rules)), None)


def build(settings: Settings) -> list:
    """All detectors, the product ones sharing the full engine's indices (read-only).

    CLIP is switched off: its weights cannot be downloaded on the benchmark machine
    and without candidate vectors ``Engine.match`` skips it anyway.
    """
    no_clip = settings.model_copy(update={"clip": settings.clip.model_copy(
        update={"enabled": False})})
    off = {"enabled": False}
    no_sscd = no_clip.model_copy(update={"descriptor": no_clip.descriptor.model_copy(
        update=off)})
    only_hash = no_sscd.model_copy(update={"local": no_clip.local.model_copy(update=off)})
    only_local = no_sscd.model_copy(update={"hash": no_clip.hash.model_copy(update=off)})
    only_sscd = no_clip.model_copy(update={"hash": no_clip.hash.model_copy(update=off),
                                           "local": no_clip.local.model_copy(update=off)})
    full = EngineDetector(PRODUCT, "product", Engine(no_clip))
    hash_only = EngineDetector("product hash stage", "hash", Engine(only_hash))
    local_only = EngineDetector("product local stage", "local", Engine(only_local))
    out = [PhashBrute(), PdqDihedral(), hash_only, local_only, full]
    if no_clip.descriptor.enabled:
        sscd = Engine(only_sscd)
        out += [EngineDetector("sscd raw cosine", "sscd", sscd),
                EngineDetector("sscd normalised", "sscd_norm", sscd)]
    return out


PRODUCT = "product (all stages)"
"""Name of the product's detector: hash, descriptor and local stages, calibrated."""


def add_gallery(detectors: list, gallery_id: int, image: DecodedImage) -> None:
    """Index one gallery image in every detector; engine indices are built once and shared."""
    full = next(d for d in detectors if getattr(d, "kind", "") == "product")
    full.add(gallery_id, fresh(image))
    for det in detectors:
        if isinstance(det, EngineDetector):
            if det is not full:
                det.engine.hash_index = full.engine.hash_index
                det.engine.descriptor_index = full.engine.descriptor_index
                _share_records(det, full, gallery_id)
        else:
            det.add(gallery_id, fresh(image))


def _share_records(det: EngineDetector, full: EngineDetector, gallery_id: int) -> None:
    """Give ``det`` the full engine's feature store; the local stage alone has no SSCD
    retrieval, so it keeps its own keypoint vote (as ``local.vote = "auto"`` does)."""
    from monitor.matching.index.local import LocalIndex

    store = full.engine.local_index.store
    if det.kind != "local":
        det.engine.local_index = full.engine.local_index
        return
    if det.engine.local_index.store is not store:
        det.engine.local_index = LocalIndex(store, vote=True)
    for f in store.features(gallery_id):
        det.engine.local_index.vote.add(gallery_id, f.descriptors)
