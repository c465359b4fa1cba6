"""Loading helpers of the ``clip`` stage (:mod:`monitor.matching.stages.clip`): the Hugging Face
cache and offline switch, the loaded model record, and the batched preprocess."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from monitor.config.environment import hf_hub_cache, hf_hub_offline


@dataclass(frozen=True)
class Loaded:
    """A loaded CLIP model: open_clip ``model``, ``preprocess`` and its batched form
    (:func:`batch_steps`), ``tokenizer``, embedding ``dim``, input ``side`` (pixels), and a
    ``note`` (e.g. random weights)."""

    model: Any
    preprocess: Any
    split: tuple[list, Any, Any] | None
    tokenizer: Any
    dim: int
    side: int
    note: str


def batch_steps(preprocess: Any) -> tuple[list, Any, Any] | None:
    """PIL steps of a ``Compose`` ending in ToTensor + Normalize, and its mean and std as
    ``(1, 3, 1, 1) float32`` tensors (None otherwise). Converting a whole batch at once gives
    the same numbers as per-image ToTensor + Normalize at a fraction of the cost."""
    import torch

    steps = list(getattr(preprocess, "transforms", []))
    if (len(steps) < 2 or type(steps[-1]).__name__ != "Normalize"
            or type(steps[-2]).__name__ not in ("ToTensor", "MaybeToTensor")):
        return None
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1)
                 for v in (steps[-1].mean, steps[-1].std))
    return steps[:-2], mean, std


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set now or was set when huggingface_hub was imported."""
    if hf_hub_offline():
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache() -> str:
    """The Hugging Face hub cache folder (``HF_HUB_CACHE`` or huggingface_hub's default)."""
    from huggingface_hub import constants

    return hf_hub_cache() or constants.HF_HUB_CACHE


def cached_weights(tag_cfg: dict) -> str | None:
    """Local path of a tag's weights if already in the Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    repo, name = os.path.split(tag_cfg.get("hf_hub", ""))
    names = [name] if name else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    paths = (try_to_load_from_cache(repo, n, cache_dir=hub_cache()) for n in names if repo)
    return next((p for p in paths if isinstance(p, str)), None)
