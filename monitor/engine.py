"""The matching engine: every stage and its gallery index, pure (no database).

``Engine.match`` runs one decoded candidate through hash → clip → local and
merges the hits per gallery image into :class:`~monitor.results.Match` objects.
The local stage verifies its own vote shortlist *and* every hash/clip hit, so
geometric evidence (inliers, region) backs whatever another stage proposed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from monitor.config import Settings
from monitor.decode import DecodedImage
from monitor.errors import StageUnavailable
from monitor.index.binary import BinaryIndex
from monitor.index.dense import DenseIndex
from monitor.index.local import LocalIndex
from monitor.results import Hit, Match, StageStatus, merge_hits
from monitor.stages.clip import ClipStage
from monitor.stages.hash import HashStage, informative
from monitor.stages.local import LocalStage
from monitor.stages.local_geometry import stretch
from monitor.stages.local_regions import regions


@dataclass(frozen=True)
class GalleryEntry:
    """What the engine needs of one protected image to (re)build its indices.

    ``phash`` is ``(K, 8) uint8`` (dihedral variants, trimmed and whole; K = 16, or 8
    for images hashed by monitor 0.1 before whole-image codes); ``clip`` is ``(D,) float32``
    or None; ``load`` decodes the stored copy when local features must be rebuilt.
    """

    gallery_id: int
    phash: np.ndarray
    clip: np.ndarray | None
    load: Callable[[], DecodedImage]


CANDIDATE_ONLY = {"max_features", "candidate_side", "proposals", "shortlist", "min_inliers",
                  "corroborate_min_inliers", "min_agreement", "crop_min_agreement",
                  "crop_checks", "agreement_exempt_inliers"}
"""Local settings that only change how candidates are checked: left out of the index
fingerprint, so changing them does not rebuild the gallery's features."""

HASH_ONLY_SIDE = 512
"""Working-copy side (pixels) when only the hash stage runs: JPEG draft decodes at
1/4-1/8 scale, and trimmed content stays large enough that its pHash equals the
one computed from the full 1024-px copy the gallery was hashed from."""


def working_side(settings: Settings) -> int:
    """Longest side (pixels) of the shared working copy the enabled stages need.

    The local stage needs the full ``decode.work_side`` (small content on a large
    canvas keeps its keypoints); CLIP and hash need much less.
    """
    if settings.local.enabled:
        return settings.decode.work_side
    return min(settings.decode.work_side, HASH_ONLY_SIDE)


def _single_threaded_kernels() -> None:
    """Limit FAISS (OpenMP) and OpenCV to one thread each.

    The checker parallelises across candidates; inner threads on top of that
    oversubscribe the cores and spin-wait. Measured on 2 busy cores: FAISS
    binary range search 0.75 → 0.026 ms, flat 2-NN of 600×800 RootSIFT
    25.6 → 5.5 ms (bench/speed figures come from the same effect).
    """
    import cv2
    import faiss

    faiss.omp_set_num_threads(1)
    cv2.setNumThreads(1)


DECISIVE_BITS = 3
"""A pHash hit this close (bits) counts as found, so sub-images are not hashed
(the default rule's ``hash_max_distance``)."""

FAR_HITS, FAR_AGREEMENT, FAR_MIN_CELLS = 5, 0.9, 32
"""Sub-image pHash hits beyond ``hash.max_distance``: how many are checked per sub-image
(nearest first), and the dense check they must pass: 0.9 of at least half the 8×8 grid
agreeing. Measured (benchmark seeds 5 and 11): a flag's band (Niger's disc) matched
Japan's flag at 1.0 on 28 cells, a flowchart symbol was placed in another at 0.95 on 20;
the copies found so agreed on 34-51."""

REGION_MAX_STRETCH = 2.0
"""A sub-image's pHash hit counts only when the sub-image has the gallery image's shape
within this stretch of one axis (either orientation). Screenshot and meme templates resize
a copy into their boxes; on benchmark seed 23 the sub-images that found copies were within
1.25 of the gallery image's shape, while strips of two text-justify icons' lines, 3.8
from Uruguay's flag, agreed with its stripes."""

WIDE_BITS, WIDE_MIN_CELLS = 10, 24
"""A pHash hit more than ``WIDE_BITS`` bits off (whole image or sub-image) has its dense
agreement judged on at least ``WIDE_MIN_CELLS`` textured cells of the 8×8 grid, else it
has none. Set on benchmark gallery 300, seed 5: plain flags and symbols flagged at 12
bits and agreement 0.94-1.0 had 4-23 cells; the copies flagged so had 24 or more, except
Djibouti's flag under an overlay (under 12, now missed)."""


def _decisive(hits: list[Hit], settings: Settings) -> bool:
    """True when ``hits`` already hold a pHash hit within :data:`DECISIVE_BITS` or a
    local hit of ``min_inliers``: no need to look at sub-images."""
    return any((h.distance is not None and h.distance <= DECISIVE_BITS)
               or (h.inliers is not None and h.inliers >= settings.local.min_inliers)
               for h in hits)


class Engine:
    """Stages plus their indices for one gallery.

    Attributes:
        hash, clip, local: the stages (None when disabled in settings).
        hash_index: ``BinaryIndex`` of 8 dihedral pHashes per gallery image.
        clip_index: ``DenseIndex`` of CLIP embeddings (None until the model loads).
        local_index: ``LocalIndex`` of gallery keypoint descriptors.
    """

    def __init__(self, settings: Settings) -> None:
        _single_threaded_kernels()
        self.settings = settings
        self.hash = HashStage(settings.hash.max_distance) if settings.hash.enabled else None
        self.clip = ClipStage(settings.clip, settings.root) if settings.clip.enabled else None
        self.local = LocalStage(settings.local) if settings.local.enabled else None
        self.hash_index = BinaryIndex(8)
        self.clip_index: DenseIndex | None = None
        self.local_index = LocalIndex()

    # -- status -------------------------------------------------------------
    def statuses(self) -> list[StageStatus]:
        """Availability of every stage, with reason and fix when unavailable."""
        off = "disabled in config.toml"
        out = [StageStatus("hash", self.hash is not None, self.hash is not None,
                           "" if self.hash else off)]
        out.append(self.clip.status() if self.clip else StageStatus("clip", False, False, off))
        out.append(StageStatus("local", self.local is not None, self.local is not None,
                               "" if self.local else off))
        return out

    def clip_ready(self) -> bool:
        """True when the clip stage is enabled and its model loads.

        Raises:
            StageUnavailable: the model cannot load and ``clip.required`` is true.
        """
        if self.clip is None:
            return False
        status = self.clip.status()
        if not status.available and self.settings.clip.required:
            raise StageUnavailable("clip", status.reason, status.fix)
        return status.available

    # -- gallery --------------------------------------------------------------
    def embed(self, images: list[DecodedImage]) -> np.ndarray | None:
        """CLIP embeddings ``(N, D) float32`` L2-normalised, or None when CLIP is unavailable."""
        return self.clip.compute(images) if images and self.clip_ready() else None

    def add(self, entry: GalleryEntry, image: DecodedImage | None = None) -> None:
        """Put one gallery image into every index (decodes it only if local needs it)."""
        self.hash_index.add(np.full(len(entry.phash), entry.gallery_id), entry.phash)
        if entry.clip is not None and self.clip_ready():
            if self.clip_index is None:
                self.clip_index = DenseIndex(len(entry.clip))
            self.clip_index.add(np.array([entry.gallery_id]), entry.clip[None, :])
        if self.local is not None:
            image = image or entry.load()
            self.local_index.add(entry.gallery_id, self.local.compute(image, gallery=True))

    def remove(self, ids: list[int]) -> None:
        """Drop gallery images from every index."""
        self.hash_index.remove(ids)
        self.local_index.remove(ids)
        if self.clip_index is not None:
            self.clip_index.remove(ids)

    # -- candidates -----------------------------------------------------------
    def match(self, image: DecodedImage, clip_vector: np.ndarray | None = None,
              allowed: set[int] | None = None) -> list[Match]:
        """Every stage's hits for one candidate, merged per gallery image, best first.

        ``clip_vector`` is the candidate's ``(D,) float32`` embedding when the
        caller batched CLIP; ``allowed`` restricts results to those gallery ids.
        """
        hits: list[Hit] = []
        local = self.local if self.local is not None and len(self.local_index) else None
        if self.hash is not None:
            hits += self._hash_hits(image, local)
        if clip_vector is not None and self.clip is not None and self.clip_index is not None:
            hits += self.clip.search(clip_vector[None, :], self.clip_index)[0]
        if local is not None:
            proposed = sorted({h.gallery_id for h in hits})
            hits += local.match_image(image, self.local_index, extra_ids=proposed)
            if self.hash is not None and not _decisive(hits, self.settings):
                hits += self._region_hashes(image, local)
        if allowed is not None:
            hits = [h for h in hits if h.gallery_id in allowed]
        return merge_hits(hits)

    def _hash_hits(self, image: DecodedImage, local: LocalStage | None) -> list[Hit]:
        """pHash hits of the candidate, each with its dense agreement when the local stage
        runs (for corroborated rules). Hits of a degenerate code (flat or striped image,
        :data:`~monitor.stages.hash.MIN_CODE_BITS`) are kept only when the dense check
        confirms them (``local.min_agreement``), and never without the local stage."""
        codes = self.hash.compute(image)
        ok = informative(codes)
        hits = self.hash.search(codes[ok], self.hash_index)
        if local is None:
            return hits
        seen = {h.gallery_id for h in hits}
        weak = [h for h in self.hash.search(codes[~ok], self.hash_index)
                if h.gallery_id not in seen]
        return (self._with_agreement(image, local, hits)
                + self._confirmed(image, local, weak))

    def _region_hashes(self, image: DecodedImage, local: LocalStage) -> list[Hit]:
        """pHash hits of the candidate's rectangular sub-images (a copy pasted whole
        into a screenshot or meme, too plain for keypoints), each with its box as the
        region. Kept only when the dense check confirms them (agreement of at least
        ``local.min_agreement``): a flat patch of page hashes like any flat gallery
        image (measured: a near-uniform wallpaper at 0-3 bits from 6 of 1,000
        distractors' sub-images, with no textured cell to check), and only when the
        sub-image has the gallery image's shape (:data:`REGION_MAX_STRETCH`). Searched out to
        ``hash.region_max_distance`` bits; of the hits beyond ``hash.max_distance`` the
        nearest :data:`FAR_HITS` are checked, and kept at :data:`FAR_AGREEMENT` on
        :data:`FAR_MIN_CELLS` textured cells."""
        hits, near = [], self.settings.hash.max_distance
        for region in regions(image, self.settings.local.proposals):
            found = self.hash.search(self.hash.compute(region.image), self.hash_index,
                                     max(near, self.settings.hash.region_max_distance))
            found = [h for h in found if self._shaped_like(region.image, h.gallery_id)]
            far = [h for h in found if h.distance > near][:FAR_HITS]
            kept = self._confirmed(region.image, local, [h for h in found if h.distance <= near])
            kept += self._confirmed(region.image, local, far, FAR_AGREEMENT, FAR_MIN_CELLS)
            hits += [replace(h, region=region.box) for h in kept]
        return hits

    def _shaped_like(self, image: DecodedImage, gallery_id: int) -> bool:
        """Whether the trimmed content of ``image`` (a sub-image) has the shape of gallery
        image ``gallery_id``'s within :data:`REGION_MAX_STRETCH` (``local_geometry.stretch``);
        True when the gallery image has no local features to take its shape from."""
        x0, y0, x1, y1 = image.content_box()
        refs = self.local_index.features(gallery_id)
        return not refs or any(stretch((x1 - x0, y1 - y0), ref.size) <= REGION_MAX_STRETCH
                               for ref in refs)

    def _with_agreement(self, image: DecodedImage, local: LocalStage, hits: list[Hit],
                        min_cells: int = 0) -> list[Hit]:
        """``hits`` (pHash) with the dense agreement of ``image`` against each gallery image
        (:meth:`LocalStage.aligned`, judged on at least ``min_cells`` textured cells, and
        on :data:`WIDE_MIN_CELLS` for a hit more than :data:`WIDE_BITS` bits off)."""
        return [replace(h, agreement=local.aligned(
            image, self.local_index, h.gallery_id,
            max(min_cells, WIDE_MIN_CELLS if (h.distance or 0) > WIDE_BITS else 0)))
            for h in hits]

    def _confirmed(self, image: DecodedImage, local: LocalStage, hits: list[Hit],
                   floor: float | None = None, min_cells: int = 0) -> list[Hit]:
        """Those of :meth:`_with_agreement` whose agreement reaches ``floor`` (default
        ``local.min_agreement``)."""
        floor = self.settings.local.min_agreement if floor is None else floor
        return [h for h in self._with_agreement(image, local, hits, min_cells)
                if h.agreement is not None and h.agreement >= floor]

    # -- persistence ----------------------------------------------------------
    def fingerprint(self) -> str:
        """Identifies the stage settings the saved indices were built with."""
        local = self.settings.local.model_dump_json(exclude=CANDIDATE_ONLY)
        clip = self.clip.fingerprint if self.clip else "-"
        return f"v3|{local}|{clip}"

    def save(self, folder: Path) -> None:
        """Save the local-feature index under ``folder`` atomically.

        Hash codes and CLIP vectors live in the database and are re-indexed in
        milliseconds on load; only gallery keypoints are costly to recompute.
        """
        if self.local is not None:
            self.local_index.save(folder / "local.npz", self.fingerprint())

    def load(self, folder: Path, entries: list[GalleryEntry],
             progress: Callable[[int], None] | None = None) -> bool:
        """Build indices from ``entries`` (the database), reusing saved local features.

        Hash and CLIP indices come straight from the entries. The saved local
        index is reconciled: images missing from it are extracted and added,
        extra ones removed; a missing or stale file (other settings) is rebuilt.
        Returns True when the local index changed, so the caller can save.
        """
        fp, wanted = self.fingerprint(), {e.gallery_id: e for e in entries}
        self.hash_index = BinaryIndex(8)
        self.hash_index.add(np.repeat([e.gallery_id for e in entries],
                                      [len(e.phash) for e in entries]).astype(np.int64),
                            np.concatenate([e.phash for e in entries]) if entries
                            else np.zeros((0, 8), np.uint8))
        self._load_clip(entries)
        loaded = LocalIndex.load(folder / "local.npz", fp) if self.local else None
        self.local_index = loaded or LocalIndex()
        have = set(self.local_index.ids())
        extra = sorted(have - set(wanted))
        if extra:
            self.local_index.remove(extra)
        missing = [wanted[g] for g in wanted if g not in have] if self.local else []
        for entry in missing:
            self.local_index.add(entry.gallery_id, self.local.compute(entry.load(), gallery=True))
            if progress:
                progress(1)
        return self.local is not None and (loaded is None or bool(extra or missing))

    def _load_clip(self, entries: list[GalleryEntry]) -> None:
        vectors = [(e.gallery_id, e.clip) for e in entries if e.clip is not None]
        if not vectors or self.clip is None or not self.clip_ready():
            self.clip_index = None
            return
        index = DenseIndex(len(vectors[0][1]))
        index.add(np.array([g for g, _ in vectors]), np.stack([v for _, v in vectors]))
        self.clip_index = index
