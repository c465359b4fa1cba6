"""The matching engine: every stage and its gallery index, pure (no database).

``Engine.match`` runs one decoded candidate through hash → descriptor → clip → local
and merges the hits per gallery image into :class:`~monitor.types.Match` objects.
The local stage verifies its own vote shortlist *and* every hash/descriptor/clip hit,
so geometric evidence (inliers, region) backs whatever another stage proposed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
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
from monitor.matching.index.signatures import SignatureStore
from monitor.matching.overlap import complete
from monitor.matching.stages.clip import ClipStage
from monitor.matching.stages.descriptor import DescriptorStage
from monitor.matching.stages.hash import HashStage
from monitor.matching.stages.local import LocalStage
from monitor.matching.stages.structure import SIDE as STRUCTURE_SIDE
from monitor.matching.stages.structure import (
    agreement,
    candidate_signatures,
    gallery_signature,
)
from monitor.types import Hit, Match, StageStatus


@dataclass(frozen=True)
class GalleryEntry:
    """What the engine needs of one protected image to (re)build its indices.

    ``phash`` is ``(K, 8) uint8`` (dihedral variants, trimmed and whole; K = 16, or 8
    for images hashed by monitor 0.1 before whole-image codes); ``clip`` is ``(D,) float32``
    or None; ``load`` decodes the stored copy when local features must be rebuilt;
    ``descriptor`` is the SSCD embedding ``(512,) float32`` L2-normalised, or None.
    """

    gallery_id: int
    phash: np.ndarray
    clip: np.ndarray | None
    load: Callable[[], DecodedImage]
    descriptor: np.ndarray | None = None


CANDIDATE_ONLY = {"max_features", "candidate_side", "proposals", "shortlist", "min_inliers",
                  "corroborate_min_inliers", "min_agreement", "crop_min_agreement",
                  "crop_checks", "agreement_exempt_inliers"}
"""Local settings that only change how candidates are checked: left out of the index
fingerprint, so changing them does not rebuild the gallery's features."""

STRUCTURE_FINGERPRINT = f"structure-v1|{STRUCTURE_SIDE}"
"""Identifies how structure signatures are made; a saved file of another is rebuilt."""

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
        hash, descriptor, clip, local: the stages (None when disabled in settings).
        hash_index: ``BinaryIndex`` of 8 dihedral pHashes per gallery image.
        descriptor_index: ``DenseIndex`` of SSCD embeddings (None until the model loads).
        clip_index: ``DenseIndex`` of CLIP embeddings (None until the model loads).
        local_index: ``LocalIndex`` of gallery keypoint descriptors.
        structure: ``SignatureStore`` of gallery structure signatures (with the descriptor
            stage, :mod:`monitor.matching.stages.structure`).
    """

    def __init__(self, settings: Settings) -> None:
        _single_threaded_kernels()
        self.settings = settings
        self.hash = HashStage(settings.hash.max_distance) if settings.hash.enabled else None
        self.clip = ClipStage(settings.clip, settings.root) if settings.clip.enabled else None
        self.descriptor = (DescriptorStage(settings.descriptor, settings.root)
                           if settings.descriptor.enabled else None)
        self.descriptor_index: DenseIndex | None = None
        self.local = LocalStage(settings.local) if settings.local.enabled else None
        self.hash_index = BinaryIndex(8)
        self.clip_index: DenseIndex | None = None
        self.local_index = LocalIndex()
        self.structure = SignatureStore(STRUCTURE_SIDE ** 2)
        self.evidence = HashEvidence(self)

    # -- status -------------------------------------------------------------
    def statuses(self) -> list[StageStatus]:
        """Availability of every stage, with reason and fix when unavailable."""
        off = "disabled in config.toml"
        out = [StageStatus("hash", self.hash is not None, self.hash is not None,
                           "" if self.hash else off)]
        out.append(self.descriptor.status() if self.descriptor
                   else StageStatus("descriptor", False, False, off))
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

    def descriptor_ready(self) -> bool:
        """True when the descriptor stage is enabled and its model loads."""
        return self.descriptor is not None and self.descriptor.ready()

    # -- gallery --------------------------------------------------------------
    def describe(self, images: list[DecodedImage]) -> np.ndarray | None:
        """SSCD embeddings ``(N, 512) float32`` L2-normalised, or None when unavailable."""
        return self.descriptor.compute(images) if images and self.descriptor_ready() else None

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
        if entry.descriptor is not None and self.descriptor_ready():
            if self.descriptor_index is None:
                self.descriptor_index = DenseIndex(len(entry.descriptor))
            self.descriptor_index.add(np.array([entry.gallery_id]), entry.descriptor[None, :])
        signed = self.descriptor_ready()
        if self.local is not None or signed:
            image = image or entry.load()
        if self.local is not None:
            self.local_index.add(entry.gallery_id, self.local.compute(image, gallery=True))
        if signed:
            self.structure.add(entry.gallery_id, gallery_signature(image))

    def remove(self, ids: list[int]) -> None:
        """Drop gallery images from every index."""
        self.hash_index.remove(ids)
        self.local_index.remove(ids)
        self.structure.remove(ids)
        if self.clip_index is not None:
            self.clip_index.remove(ids)
        if self.descriptor_index is not None:
            self.descriptor_index.remove(ids)

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
        if self.descriptor_index is not None and self.descriptor_ready():
            hits += self.verified(image, self.descriptor.search(image, self.descriptor_index))
        if clip_vector is not None and self.clip is not None and self.clip_index is not None:
            hits += self.clip.search(clip_vector[None, :], self.clip_index)[0]
        if local is not None:
            proposed = sorted({h.gallery_id for h in hits})
            hits += local.match_image(image, self.local_index, extra_ids=proposed)
            if self.hash is not None and not decisive(hits, self.settings):
                hits += self.evidence.regions(image, local)
        if allowed is not None:
            hits = [h for h in hits if h.gallery_id in allowed]
        size = (image.width, image.height)
        return [complete(m, size, self.local_index.original_size(m.gallery_id))
                for m in merge_hits(hits)]

    def verified(self, image: DecodedImage, hits: list[Hit]) -> list[Hit]:
        """Descriptor hits with their structure agreement (:mod:`.stages.structure`)."""
        views = candidate_signatures(image) if hits else None
        return [replace(h, structure=agreement(views, sig))
                if (sig := self.structure.get(h.gallery_id)) is not None else h for h in hits]

    # -- persistence ----------------------------------------------------------
    def fingerprint(self) -> str:
        """Identifies the stage settings the saved indices were built with."""
        local = self.settings.local.model_dump_json(exclude=CANDIDATE_ONLY)
        clip = self.clip.fingerprint if self.clip else "-"
        return f"v3|{local}|{clip}"

    def save(self, folder: Path) -> None:
        """Save the local-feature index and structure signatures under ``folder`` atomically.

        Hash codes, SSCD and CLIP vectors live in the database and are re-indexed in
        milliseconds on load; gallery keypoints and signatures need the pixels.
        """
        if self.local is not None:
            self.local_index.save(folder / "local.npz", self.fingerprint())
        if self.descriptor_ready():
            self.structure.save(folder / "structure.npz", STRUCTURE_FINGERPRINT)

    def load(self, folder: Path, entries: list[GalleryEntry],
             progress: Callable[[int], None] | None = None) -> bool:
        """Build indices from ``entries`` (the database), reusing saved local features.

        Hash, SSCD and CLIP indices come straight from the entries. The saved local
        index and structure signatures are reconciled: images missing from them are
        decoded once and added, extra ones removed; a missing or stale file (other
        settings) is rebuilt. Returns True when either changed, so the caller can save.
        """
        fp, wanted = self.fingerprint(), {e.gallery_id: e for e in entries}
        self.hash_index = BinaryIndex(8)
        self.hash_index.add(np.repeat([e.gallery_id for e in entries],
                                      [len(e.phash) for e in entries]).astype(np.int64),
                            np.concatenate([e.phash for e in entries]) if entries
                            else np.zeros((0, 8), np.uint8))
        self._load_clip(entries)
        self.descriptor_index = self._dense([(e.gallery_id, e.descriptor) for e in entries
                                             if e.descriptor is not None],
                                            self.descriptor_ready)
        loaded = LocalIndex.load(folder / "local.npz", fp) if self.local else None
        sig = self.descriptor_ready()  # signatures serve the descriptor's neighbours only
        signed = (SignatureStore.load(folder / "structure.npz", STRUCTURE_FINGERPRINT,
                                      STRUCTURE_SIDE ** 2) if sig else None)
        self.local_index = loaded or LocalIndex()
        self.structure = signed or SignatureStore(STRUCTURE_SIDE ** 2)
        changed = bool((self.local and loaded is None) or (sig and signed is None))
        for store in (self.local_index, self.structure):
            extra = sorted(set(store.ids()) - set(wanted))
            store.remove(extra)
            changed |= bool(extra)
        no_local = set(wanted) - set(self.local_index.ids()) if self.local else set()
        no_sig = set(wanted) - set(self.structure.ids()) if sig else set()
        for gid in sorted(no_local | no_sig):
            image = wanted[gid].load()
            if gid in no_local:
                self.local_index.add(gid, self.local.compute(image, gallery=True))
            if gid in no_sig:
                self.structure.add(gid, gallery_signature(image))
            if progress:
                progress(1)
        return changed or bool(no_local or no_sig)

    def _load_clip(self, entries: list[GalleryEntry]) -> None:
        self.clip_index = self._dense([(e.gallery_id, e.clip) for e in entries
                                       if e.clip is not None], self.clip_ready)

    @staticmethod
    def _dense(vectors: list[tuple[int, np.ndarray]],
               ready: Callable[[], bool]) -> DenseIndex | None:
        """A :class:`DenseIndex` of ``(gallery_id, vector)`` pairs, or None when there are
        none or the stage cannot run (``ready()`` false)."""
        if not vectors or not ready():
            return None
        index = DenseIndex(len(vectors[0][1]))
        index.add(np.array([g for g, _ in vectors]), np.stack([v for _, v in vectors]))
        return index
