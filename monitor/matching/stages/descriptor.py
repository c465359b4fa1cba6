"""Stage ``descriptor``: SSCD copy-detection embeddings, score-normalised, FAISS inner product.

SSCD (Pizzi et al., "A Self-Supervised Descriptor for Image Copy Detection", CVPR 2022)
is trained to map an image and its edited copies (crops, filters, overlays, recolours)
close together and unrelated images apart; with score normalisation it was the
state of the art on DISC21 (µAP 0.725). The model runs on onnxruntime
(:mod:`.descriptor_model`); inputs are resized to ``side`` × ``side`` pixels, as the SSCD
repository evaluates DISC21 (``Resize([320, 320])``).

A candidate is embedded whole, as its trimmed content (uniform pads removed) and as
each rectangular region proposal (:mod:`.local_regions`: a copy pasted into a
screenshot, page or collage), the proposals at the smaller ``region_side``
(:data:`REGION_SIDE_SOURCE`). Each embedding's ``top_k`` gallery
neighbours with a raw cosine of at least ``min_similarity`` become hits; per gallery
image the best normalised similarity (:mod:`monitor.matching.background`) is kept with
the box it came from. The stage proposes; the calibrated confidence decides.

Nothing is loaded until :meth:`DescriptorStage.status` or a compute call; the first
attempt, success or failure, is kept for the life of the stage.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from monitor.config import DescriptorSettings
from monitor.errors import ModelLoadFailure, StageUnavailable
from monitor.imaging.decode import DecodedImage
from monitor.matching.background import Background, shipped_path
from monitor.matching.index.dense import DenseIndex
from monitor.matching.stages import descriptor_model
from monitor.matching.stages.local_regions import iou, regions
from monitor.types import Box, Hit, StageStatus

FINGERPRINT_VERSION = 2
"""Bump when preprocessing changes embeddings, so stored gallery vectors are recomputed."""

TRIM_MIN_GAIN = 0.1
"""The trimmed content is embedded on its own when trimming removes at least this share
of the image's area (pads, blank canvas): SSCD sees borders as content."""

SAME_VIEW_IOU = 0.95
"""A region proposal whose box overlaps the whole image or an earlier view this much
(intersection over union) is not embedded again: its embedding would repeat that view's.
Measured on the ``bench.scale`` queries (seed 5): 30 of 565 views (5.3 %)."""

REGION_SIDE_SOURCE = (
    "bench.scale queries of seed 5, gallery 10k, 304 candidates with proposals: embedded "
    "at 224 px rather than 320, a proposal that is a copy reaches the cascade floor as "
    "often (174 vs 165 of 210), at half the model time (10.9 vs 21.8 ms per view); the "
    "whole image at 224 loses copies (393 vs 418 of 500), so it stays at descriptor.side")
"""Measurement behind ``descriptor.region_side``'s default (:meth:`DescriptorStage.embed_views`)."""

SCORE_SCALE = 0.5
"""The hit's own score is ``normalised / SCORE_SCALE`` clipped to [0, 1]: a display value
only (the match's confidence uses the similarities themselves)."""


class DescriptorStage:
    """Lazily loaded SSCD model with its background set.

    Attributes:
        settings: the ``[descriptor]`` section.
        root: deployment root; a relative model or background path resolves here.
    """

    name = "descriptor"

    def __init__(self, settings: DescriptorSettings, root: Path) -> None:
        self.settings, self.root = settings, Path(root)
        self._lock = threading.Lock()
        self._attempted = False
        self._embedder: descriptor_model.Embedder | None = None
        self._background: Background | None = None
        self._failure: ModelLoadFailure | None = None

    @property
    def fingerprint(self) -> str:
        """Identifies the embedding space (model and preprocessing); loads nothing."""
        model = descriptor_model.fingerprint(self.settings.model, self.root)
        return f"descriptor-v{FINGERPRINT_VERSION}:{model}:{self.settings.side}"

    # -- loading ---------------------------------------------------------------
    def _load(self) -> None:
        with self._lock:
            if self._attempted:
                return
            try:
                s = self.settings
                self._embedder = descriptor_model.load(s.model, self.root, s.side)
                self._background = self._load_background(self._embedder.dim)
            except ModelLoadFailure as failure:
                self._embedder, self._failure = None, failure
            self._attempted = True

    def _load_background(self, dim: int) -> Background | None:
        s = self.settings
        if s.background.lower() == "none":
            return None
        if s.background:
            path = Path(s.background).expanduser()
            path = path if path.is_absolute() else self.root / path
        elif s.model in descriptor_model.BUILTIN:
            path = shipped_path(s.model)
        else:
            return None  # a user's own model has no shipped background
        return Background.load(path, dim, s.background_k, s.background_beta)

    def status(self) -> StageStatus:
        """Load once (cached) and say whether the stage runs; ``reason`` names the model and
        background when it does, the failure and its fix when it does not."""
        if not self.settings.enabled:
            return StageStatus(self.name, False, False,
                               "disabled in config (descriptor.enabled = false)",
                               "set descriptor.enabled = true")
        self._load()
        if self._failure is not None:
            return StageStatus(self.name, True, False, self._failure.reason, self._failure.fix)
        return StageStatus(self.name, True, True, self.describe())

    def describe(self) -> str:
        """One line: the model, its width and the score normalisation in use."""
        s, bg = self.settings, self._background
        norm = (f"normalised against {len(bg)} background images (k={bg.k}, beta={bg.beta:g})"
                if bg is not None else "not normalised (no background set)")
        return f"SSCD {s.model} ({self._embedder.dim}-d, {s.side}x{s.side}), {norm}"

    def ready(self) -> bool:
        """True when the stage can run (loads the model on first call); cheap after that,
        as it is asked once per candidate."""
        if not self.settings.enabled:
            return False
        self._load()
        return self._failure is None

    def _require(self) -> descriptor_model.Embedder:
        st = self.status()
        if not st.available:
            raise StageUnavailable(self.name, st.reason, st.fix)
        return self._embedder

    @property
    def dim(self) -> int:
        """Embedding width D (512 for SSCD). Raises :class:`StageUnavailable`."""
        return self._require().dim

    @property
    def background(self) -> Background | None:
        """The loaded background set, or None (not normalised)."""
        self._load()
        return self._background

    # -- embedding -------------------------------------------------------------
    def _pixels(self, image: DecodedImage | Image.Image, side: int) -> np.ndarray:
        """``uint8 (side, side, 3)`` RGB: the image squeezed to a square (SSCD's DISC21
        evaluation, ``Resize([320, 320])``), by area averaging (OpenCV ``INTER_AREA``) from
        a cached copy of twice that side."""
        if isinstance(image, DecodedImage):
            image = image.scaled(2 * side)
        rgb = np.asarray(image.convert("RGB"))
        return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)

    def compute(self, images: list[DecodedImage | Image.Image],
                side: int | None = None) -> np.ndarray:
        """Embeddings ``(N, D) float32`` L2-normalised, in batches of 16, each image squeezed
        to ``side`` × ``side`` pixels (default ``descriptor.side``, as the gallery is).

        Raises:
            StageUnavailable: the model cannot be loaded or the stage is disabled.
        """
        embed = self._require()
        side = side or self.settings.side
        pixels = [self._pixels(im, side) for im in images]
        if not pixels:
            return np.zeros((0, embed.dim), np.float32)
        return np.concatenate([embed(np.stack(pixels[i:i + 16]))
                               for i in range(0, len(pixels), 16)])

    def views(self, image: DecodedImage) -> list[tuple[Image.Image, Box | None]]:
        """What of a candidate is embedded: the whole working copy (box None), its trimmed
        content and its region proposals (those not within :data:`SAME_VIEW_IOU` of an
        earlier view), each with its box in original pixels."""
        base, proposals = self._views(image)
        return base + proposals

    def _views(self, image: DecodedImage) -> tuple[list[tuple[Image.Image, Box | None]],
                                                   list[tuple[Image.Image, Box | None]]]:
        """:meth:`views` in two parts: the whole image and trimmed content, the proposals."""
        out: list[tuple[Image.Image, Box | None]] = [(image.image, None)]
        base = image.base
        x0, y0, x1, y1 = image.content_box()
        if (x1 - x0) * (y1 - y0) <= (1 - TRIM_MIN_GAIN) * base.width * base.height:
            trimmed, (ox, oy), scale = image.trimmed(max(image.image.size))
            box = (round(ox), round(oy), round(ox + trimmed.width * scale),
                   round(oy + trimmed.height * scale))
            out.append((trimmed, box))
        boxes = [b or (0, 0, image.width, image.height) for _, b in out]
        proposals: list[tuple[Image.Image, Box | None]] = []
        for r in regions(image, self.settings.regions):
            if all(iou(r.box, b) < SAME_VIEW_IOU for b in boxes):
                proposals.append((r.image.image, r.box))
                boxes.append(r.box)
        return out, proposals

    def embed_views(self, image: DecodedImage) -> tuple[np.ndarray, list[Box | None]]:
        """Embeddings ``(V, D) float32`` of :meth:`views` with each view's box: the whole
        image and trimmed content at ``descriptor.side`` (as the gallery), the region
        proposals at ``descriptor.region_side`` (:data:`REGION_SIDE_SOURCE`).

        Raises:
            StageUnavailable: the model cannot be loaded or the stage is disabled.
        """
        base, proposals = self._views(image)
        vectors = self.compute([v for v, _ in base])
        if proposals:
            vectors = np.concatenate([vectors, self.compute(
                [v for v, _ in proposals], self.settings.region_side)])
        return vectors, [b for _, b in base + proposals]

    # -- search ----------------------------------------------------------------
    def search(self, image: DecodedImage, index: DenseIndex) -> list[Hit]:
        """Hits of one candidate: per gallery image its best view, best first, at most
        ``top_k`` gallery images.

        Raises:
            StageUnavailable: the model cannot be loaded.
            ValueError: the index was built with another embedding width.
        """
        if not len(index):
            return []
        vectors, boxes = self.embed_views(image)
        return self.hits(vectors, boxes, index)

    def hits(self, vectors: np.ndarray, boxes: list[Box | None], index: DenseIndex) -> list[Hit]:
        """:meth:`search` from embeddings already computed, ``(V, D) float32`` with the box
        of each view (None for the whole image)."""
        s = self.settings
        if vectors.shape[1] != index.dim:
            raise ValueError(f"descriptor dim {vectors.shape[1]} != index dim {index.dim}; "
                             "the gallery was embedded with another model")
        found = index.search(vectors, s.top_k)
        raw = np.array([[c for _, c in row] + [np.nan] * (s.top_k - len(row)) for row in found],
                       np.float32).reshape(len(found), s.top_k)
        bg = self.background
        norm = bg.normalise(raw, vectors) if bg is not None else raw
        best: dict[int, Hit] = {}
        for v, row in enumerate(found):
            for j, (gid, cos) in enumerate(row):
                if cos < s.min_similarity:
                    continue
                n = float(norm[v, j])
                if gid not in best or n > best[gid].normalised:
                    best[gid] = Hit(stage=self.name, gallery_id=gid,
                                    score=float(min(1.0, max(0.0, n / SCORE_SCALE))),
                                    similarity=float(cos), normalised=n, region=boxes[v])
        return sorted(best.values(), key=lambda h: -h.normalised)[:s.top_k]
