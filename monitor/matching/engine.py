"""The matching engine: every stage and its gallery index, pure (no database).

``Engine.match`` retrieves, then verifies (:mod:`monitor.matching.retrieval`): the
candidate's pHash codes, SSCD views and CLIP vector are looked up in the retrieval
indices; a candidate that comes near no protected image stops there (the cascade);
otherwise at most ``retrieval.shortlist`` gallery images are verified from the feature
store (RANSAC, dense and structure checks; the keypoint vote adds its own shortlist for
small galleries), and the hits are merged per gallery image into
:class:`~monitor.types.Match` objects. Persistence and reconciliation with the database
live in :mod:`monitor.matching.persist`.
"""

from __future__ import annotations

import threading
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
from monitor.matching.overlap import complete
from monitor.matching.retrieval import Retrieved
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
                  "vote", "vote_max_gallery",
                  "corroborate_min_inliers", "min_agreement", "crop_min_agreement",
                  "crop_checks", "agreement_exempt_inliers"}
"""Local settings that only change how candidates are checked: left out of the index
fingerprint, so changing them does not rebuild the gallery's features."""

STRUCTURE_FINGERPRINT = f"structure-v1|{STRUCTURE_SIDE}"
"""Identifies how structure signatures are made; a saved store of another is rebuilt."""

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
        hash_index: ``BinaryIndex`` of 16 pHash codes per gallery image (retrieval).
        descriptor_index: ``DenseIndex`` of SSCD embeddings (None until the model loads).
        clip_index: ``DenseIndex`` of CLIP embeddings (None until the model loads).
        local_index: ``LocalIndex``: per-image local features and structure signatures in
            a feature store read on demand, plus the keypoint vote for small galleries.
        counts: candidates ``{"stopped": n, "verified": n}`` by the cascade, this process.
    """

    def __init__(self, settings: Settings) -> None:
        _single_threaded_kernels()
        self.settings = settings
        self.hash = HashStage(settings.hash.max_distance) if settings.hash.enabled else None
        self.clip = ClipStage(settings.clip, settings.root) if settings.clip.enabled else None
        self.descriptor = (DescriptorStage(settings.descriptor, settings.root)
                           if settings.descriptor.enabled else None)
        self.local = LocalStage(settings.local) if settings.local.enabled else None
        r = settings.retrieval
        self.hash_index = BinaryIndex(8, flat_max=r.hash_flat_max)
        self.descriptor_index: DenseIndex | None = None
        self.clip_index: DenseIndex | None = None
        self.local_index = LocalIndex(vote=False)
        self.evidence = HashEvidence(self)
        self.counts = {"stopped": 0, "verified": 0}
        self._lock = threading.Lock()

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

    def new_dense(self, dim: int) -> DenseIndex:
        """An empty SSCD or CLIP index of width ``dim`` with the retrieval settings."""
        return DenseIndex(dim, flat_max=self.settings.retrieval.dense_flat_max)

    # -- gallery --------------------------------------------------------------
    def describe(self, images: list[DecodedImage]) -> np.ndarray | None:
        """SSCD embeddings ``(N, 512) float32`` L2-normalised, or None when unavailable."""
        return self.descriptor.compute(images) if images and self.descriptor_ready() else None

    def embed(self, images: list[DecodedImage]) -> np.ndarray | None:
        """CLIP embeddings ``(N, D) float32`` L2-normalised, or None when CLIP is unavailable."""
        return self.clip.compute(images) if images and self.clip_ready() else None

    def add(self, entry: GalleryEntry, image: DecodedImage | None = None) -> None:
        """Put one gallery image into the indices: its global signals (pHash, SSCD, CLIP)
        and its verification record (local features, structure signature; decodes it
        when ``image`` is None)."""
        self.add_signals(entry)
        self.add_record(entry, image)

    def add_signals(self, entry: GalleryEntry) -> None:
        """Index ``entry``'s pHash codes, SSCD and CLIP vectors (no decode)."""
        self.hash_index.add(np.full(len(entry.phash), entry.gallery_id), entry.phash)
        if entry.clip is not None and self.clip_ready():
            if self.clip_index is None:
                self.clip_index = self.new_dense(len(entry.clip))
            self.clip_index.add(np.array([entry.gallery_id]), entry.clip[None, :])
        if entry.descriptor is not None and self.descriptor_ready():
            if self.descriptor_index is None:
                self.descriptor_index = self.new_dense(len(entry.descriptor))
            self.descriptor_index.add(np.array([entry.gallery_id]), entry.descriptor[None, :])

    def add_record(self, entry: GalleryEntry, image: DecodedImage | None = None) -> None:
        """Store ``entry``'s local features and structure signature (decoded if needed)."""
        signed = self.descriptor_ready()
        if self.local is None and not signed:
            return
        image = image or entry.load()
        if self.local_index.vote is None and self.wants_vote():
            self.local_index.start_vote()
        features = self.local.compute(image, gallery=True) if self.local is not None else None
        self.local_index.add(entry.gallery_id, features,
                             gallery_signature(image) if signed else None)

    def remove(self, ids: list[int]) -> None:
        """Drop gallery images from every index (only their entries)."""
        self.hash_index.remove(ids)
        self.local_index.remove(ids)
        for index in (self.clip_index, self.descriptor_index):
            if index is not None:
                index.remove(ids)

    # -- candidates -----------------------------------------------------------
    def match(self, image: DecodedImage, clip_vector: np.ndarray | None = None,
              allowed: set[int] | None = None) -> list[Match]:
        """Every stage's verified hits for one candidate, merged per gallery image, best
        first; [] when the cascade stops it after retrieval.

        ``clip_vector`` is the candidate's ``(D,) float32`` embedding when the
        caller batched CLIP; ``allowed`` restricts results to those gallery ids.
        """
        found = self.retrieve(image, clip_vector)
        if allowed is not None:
            found = found.within(allowed)
        cascade = self.cascades() and self.settings.retrieval.cascade_min_confidence > 0
        shortlist = found.ranked(self.settings.retrieval, cascade, self.gallery_size())
        near = bool(shortlist) or not cascade
        with self._lock:
            self.counts["verified" if near else "stopped"] += 1
        if not near:
            return []
        shortlist = shortlist[:self.settings.retrieval.shortlist]
        hits = self.verify(image, found.within(set(shortlist)), shortlist)
        if allowed is not None:
            hits = [h for h in hits if h.gallery_id in allowed]
        size = (image.width, image.height)
        return [complete(m, size, self.local_index.original_size(m.gallery_id))
                for m in merge_hits(hits)]

    def wants_vote(self, gallery_size: int = 0) -> bool:
        """Whether the keypoint vote is kept for a gallery of ``gallery_size`` images:
        ``local.vote`` on, or auto while the descriptor stage cannot run; never above
        ``local.vote_max_gallery``."""
        s = self.settings.local
        wanted = s.vote == "on" or (s.vote == "auto" and not self.descriptor_ready())
        return self.local is not None and wanted and gallery_size <= s.vote_max_gallery

    def gallery_size(self) -> int:
        """Protected images in the SSCD index (the cascade's floor grows with it)."""
        return len(self.descriptor_index) if self.descriptor_index is not None else 0

    def cascades(self) -> bool:
        """Whether the cascade may stop candidates: only with SSCD vectors in the index
        (its threshold is calibrated on pHash *and* SSCD evidence; on pHash alone it
        would stop crops and filtered copies that only local features find)."""
        return (self.descriptor_index is not None and len(self.descriptor_index) > 0
                and self.descriptor_ready())

    def retrieve(self, image: DecodedImage, clip_vector: np.ndarray | None = None) -> Retrieved:
        """The retrieval tier alone: hits of every global signal, SSCD hits with their
        structure agreement (a cheap check from the stored signature) for the cascade."""
        hashed, weak = self.evidence.retrieve(image) if self.hash is not None else ([], [])
        described: list[Hit] = []
        if self.descriptor_index is not None and self.descriptor_ready():
            described = self.verified(image, self.descriptor.search(image,
                                                                    self.descriptor_index))
        clipped: list[Hit] = []
        if clip_vector is not None and self.clip is not None and self.clip_index is not None:
            clipped = self.clip.search(clip_vector[None, :], self.clip_index)[0]
        return Retrieved(hashed, weak, described, clipped)

    def verify(self, image: DecodedImage, found: Retrieved, shortlist: list[int]) -> list[Hit]:
        """Verified hits of the ``shortlist`` (gallery ids): dense agreement of pHash hits,
        SSCD hits as retrieved (with structure), RANSAC of local features (plus the keypoint
        vote's own shortlist and, when nothing is decisive, sub-images' pHash hits)."""
        local = self.local if self.local is not None and len(self.local_index) else None
        hits = (self.evidence.verify(image, local, found.hash, found.weak_hash)
                if self.hash is not None else [])
        hits += found.descriptor + found.clip
        if local is not None:
            hits += local.match_image(image, self.local_index, extra_ids=shortlist)
            if self.hash is not None and not decisive(hits, self.settings):
                hits += self.evidence.regions(image, local)
        return hits

    def verified(self, image: DecodedImage, hits: list[Hit]) -> list[Hit]:
        """Descriptor hits with their structure agreement (:mod:`.stages.structure`)."""
        views = candidate_signatures(image) if hits else None
        return [replace(h, structure=agreement(views, sig))
                if (sig := self.local_index.signature(h.gallery_id)) is not None else h
                for h in hits]

    # -- persistence ----------------------------------------------------------
    def fingerprint(self) -> str:
        """Identifies the settings the saved verification records were built with (local
        features, and whether structure signatures are kept)."""
        local = self.settings.local.model_dump_json(exclude=CANDIDATE_ONLY)
        signed = STRUCTURE_FINGERPRINT if self.descriptor_ready() else "-"
        return f"v4|{local}|{signed}"

    def save(self, folder: Path) -> None:
        """Save every index under ``folder`` (:func:`monitor.matching.persist.save`)."""
        from monitor.matching import persist

        persist.save(self, folder)

    def load(self, folder: Path, live: np.ndarray,
             fetch: Callable[[list[int]], list[GalleryEntry]],
             progress: Callable[[int], None] | None = None) -> bool:
        """Open the saved indices and reconcile them with the ``live`` gallery ids
        (:func:`monitor.matching.persist.load`). Returns True when anything changed."""
        from monitor.matching import persist

        return persist.load(self, folder, live, fetch, progress)

    def reconcile(self, live: np.ndarray, fetch: Callable[[list[int]], list[GalleryEntry]]
                  ) -> bool:
        """Bring the open indices to the ``live`` gallery ids, incrementally
        (:func:`monitor.matching.persist.reconcile`). Returns True when anything changed."""
        from monitor.matching import persist

        return persist.reconcile(self, live, fetch)
