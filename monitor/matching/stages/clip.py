"""Stage ``clip``: open_clip image embeddings searched by cosine in a FAISS inner-product index.

CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural
Language Supervision") as implemented by open_clip (Ilharco et al. 2021); the
default weights ``ViT-B-32`` / ``laion2b_s34b_b79k`` were trained on LAION-2B
(Schuhmann et al. 2022). Embeddings are L2-normalised, so the inner product of
:class:`~monitor.matching.index.dense.DenseIndex` is the cosine.

Weights, in order of precedence (see ``ClipSettings``):

- ``checkpoint = "/path/model.bin"``: a local open_clip state dict; no network.
- ``pretrained = "<tag>"``: looked up in the Hugging Face cache first (then no
  network is used); otherwise downloaded by open_clip, unless the hub is offline
  (``HF_HUB_OFFLINE=1``), in which case the stage is unavailable at once.
- ``pretrained = ""`` and ``checkpoint = ""``: random weights drawn with
  :data:`RANDOM_SEED`. The stage is available but says "random weights: for
  tests only"; matches are meaningless except as exact-copy detection.

Nothing is imported or loaded until :meth:`ClipStage.status` or a compute call;
the first attempt (success or failure) is cached for the life of the stage. Building the
model (weights resolution, load failures and their fixes) is in
:mod:`monitor.matching.stages.clip_model`.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from monitor.config import ClipSettings
from monitor.errors import ModelLoadFailure as LoadFailure
from monitor.errors import StageUnavailable
from monitor.imaging.decode import DecodedImage
from monitor.matching.index.dense import DenseIndex
from monitor.matching.stages import clip_model
from monitor.matching.stages.clip_model import RANDOM_NOTE, RANDOM_SEED
from monitor.matching.stages.clip_weights import Loaded
from monitor.types import Hit, StageStatus

__all__ = ["FINGERPRINT_VERSION", "RANDOM_NOTE", "RANDOM_SEED", "REDUCE_MARGIN",
           "UNRELATED_COSINE", "ClipStage"]

UNRELATED_COSINE = 0.5
"""Cosine mapped to score 0. A rough prior for unrelated photos under ViT-B CLIP image
towers; uncalibrated (weights cannot be fetched where this was written)."""

REDUCE_MARGIN = 1.25
"""The preprocess gets a copy whose shortest side is this × the model's input side."""

FINGERPRINT_VERSION = 1
"""Bump when preprocessing changes embeddings, so saved indices are rebuilt."""


class ClipStage:
    """Lazily loaded open_clip model: image and text embeddings, and gallery lookup.

    Attributes:
        settings: the ``[clip]`` section.
        root: deployment root; relative ``checkpoint`` and ``model_config_dir`` resolve here.
    """

    name = "clip"

    def __init__(self, settings: ClipSettings, root: Path) -> None:
        self.settings, self.root = settings, Path(root)
        self._lock = threading.Lock()
        self._attempted = False
        self._loaded: Loaded | None = None
        self._failure: LoadFailure | None = None

    @property
    def fingerprint(self) -> str:
        """Identifies the embedding space (model, weights, preprocessing); cheap, loads nothing.

        A custom model config contributes its file's sha256; a checkpoint its path and size.
        """
        return f"clip-v{FINGERPRINT_VERSION}:{clip_model.fingerprint(self.settings, self.root)}"

    def _load(self) -> tuple[Loaded | None, LoadFailure | None]:
        with self._lock:
            if not self._attempted:
                try:
                    self._loaded = clip_model.load(self.settings, self.root)
                except LoadFailure as failure:
                    self._failure = failure
                self._attempted = True
            return self._loaded, self._failure

    def status(self) -> StageStatus:
        """Load once (cached) and say whether the stage can run, why not, and the fix.

        ``reason`` is also set when available with random weights (:data:`RANDOM_NOTE`).
        """
        if not self.settings.enabled:
            return StageStatus(self.name, False, False, "disabled in config (clip.enabled = false)",
                               "set clip.enabled = true")
        loaded, failure = self._load()
        if failure is not None:
            return StageStatus(self.name, True, False, failure.reason, failure.fix)
        fix = "set clip.pretrained or clip.checkpoint for real weights" if loaded.note else ""
        return StageStatus(self.name, True, True, loaded.note, fix)

    def ready(self) -> bool:
        """True when the stage can run; False when callers should skip it.

        Raises:
            StageUnavailable: enabled, not loadable, and ``clip.required = true``.
        """
        st = self.status()
        if st.enabled and not st.available and self.settings.required:
            raise StageUnavailable(self.name, st.reason, st.fix)
        return st.available

    def require(self) -> Loaded:
        """The loaded model; raises :class:`StageUnavailable` when disabled or not loadable."""
        st = self.status()
        if not st.available:
            raise StageUnavailable(self.name, st.reason, st.fix)
        return self._loaded

    @property
    def dim(self) -> int:
        """Embedding dimension D (loads the model; raises :class:`StageUnavailable`)."""
        return self.require().dim

    def _reduced(self, image: DecodedImage, side: int) -> Any:
        """Smallest cached copy whose shortest side is ``>= REDUCE_MARGIN × side`` pixels."""
        w, h = image.image.size
        return image.scaled(math.ceil(REDUCE_MARGIN * side * max(w, h) / max(1, min(w, h))))

    def pixels(self, images: list[DecodedImage]) -> Any:
        """Model input ``(N, 3, S, S) float32`` torch tensor: the model's own preprocess
        (resize, centre crop, normalise) applied to reduced copies (:meth:`_reduced`)."""
        import torch

        loaded = self.require()
        if loaded.split is None:
            return torch.stack([loaded.preprocess(self._reduced(im, loaded.side)) for im in images])
        steps, mean, std = loaded.split
        arrays = []
        for im in images:
            x = self._reduced(im, loaded.side)
            for step in steps:
                x = step(x)
            arrays.append(np.asarray(x, np.uint8))
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        return batch.sub_(mean).div_(std)

    def _encode(self, items: list, to_input: Any, encoder: Any) -> np.ndarray:
        """``encoder(to_input(batch))`` over batches of ``batch_size``; unit rows, float32."""
        import torch

        out = np.zeros((len(items), self.dim), np.float32)
        bs = max(1, self.settings.batch_size)
        for start in range(0, len(items), bs):
            inputs = to_input(items[start:start + bs])
            with torch.inference_mode():
                out[start:start + bs] = encoder(inputs).float().numpy()
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def compute(self, images: list[DecodedImage]) -> np.ndarray:
        """Image embeddings, ``(N, D) float32``, unit L2 norm, in batches of ``batch_size``.

        Raises:
            StageUnavailable: the model cannot be loaded (or the stage is disabled).
        """
        return self._encode(images, self.pixels, self.require().model.encode_image)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Text embeddings in the image space, ``(N, D) float32``, unit L2 norm (text-to-image
        search of the gallery). Raises :class:`StageUnavailable` like :meth:`compute`."""
        loaded = self.require()
        return self._encode(list(texts), loaded.tokenizer, loaded.model.encode_text)

    @staticmethod
    def score(cosine: float) -> float:
        """Cosine to [0, 1], linear, monotone: 1 at 1.0, 0 at :data:`UNRELATED_COSINE` or below."""
        return float(min(1.0, max(0.0, (cosine - UNRELATED_COSINE) / (1.0 - UNRELATED_COSINE))))

    def search(self, vectors: np.ndarray, index: DenseIndex) -> list[list[Hit]]:
        """For each row of ``vectors`` ``(Q, D) float32``: up to ``top_k`` hits, best first,
        with ``cosine >= min_cosine``.

        Raises:
            ValueError: D differs from ``index.dim`` (index built with another model).
        """
        q = np.asarray(vectors, np.float32).reshape(-1, np.shape(vectors)[-1])
        if q.shape[1] != index.dim:
            raise ValueError(f"query dim {q.shape[1]} != index dim {index.dim}; rebuild the index")
        s = self.settings
        return [[Hit(stage=self.name, gallery_id=gid, score=self.score(c), cosine=c)
                 for gid, c in row if c >= s.min_cosine] for row in index.search(q, s.top_k)]

