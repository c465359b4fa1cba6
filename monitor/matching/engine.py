"""The matching engine: every stage and its gallery index, pure (no database).

``Engine.match`` runs one decoded candidate through hash → clip → local and
merges the hits per gallery image into :class:`~monitor.types.Match` objects.
The local stage verifies its own vote shortlist *and* every hash/clip hit, so
geometric evidence (inliers, region) backs whatever another stage proposed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.config import Settings
from monitor.errors import StageUnavailable
from monitor.imaging.decode import DecodedImage
from monitor.matching.confidence import merge_hits
from monitor.matching.hash_evidence import HashEvidence, decisive
from monitor.matching.index.binary import BinaryIndex
from monitor.matching.index.dense import DenseIndex
from monitor.matching.index.local import LocalIndex
from monitor.matching.stages.clip import ClipStage
from monitor.matching.stages.hash import HashStage
from monitor.matching.stages.local import LocalStage
from monitor.types import Hit, Match, StageStatus


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
        self.evidence = HashEvidence(self)

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
            hits += self.evidence.whole(image, local)
        if clip_vector is not None and self.clip is not None and self.clip_index is not None:
            hits += self.clip.search(clip_vector[None, :], self.clip_index)[0]
        if local is not None:
            proposed = sorted({h.gallery_id for h in hits})
            hits += local.match_image(image, self.local_index, extra_ids=proposed)
            if self.hash is not None and not decisive(hits, self.settings):
                hits += self.evidence.regions(image, local)
        if allowed is not None:
            hits = [h for h in hits if h.gallery_id in allowed]
        return merge_hits(hits)

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
