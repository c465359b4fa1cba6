"""Loading helpers of the ``clip`` stage (:mod:`monitor.matching.stages.clip`): the Hugging Face
cache and offline switch, the loaded model record, and the batched preprocess."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from monitor.config.environment import hf_hub_cache, hf_hub_offline, https_proxy_configured

HUB_PROBE_TIMEOUT = 3.0
"""Seconds allowed to open a TCP connection to the Hugging Face hub before a download
is tried; huggingface_hub's own retries and backoff took ~46 s to give up on a machine
without network (measured with `monitor doctor`, issue 20)."""


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


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """Why the Hugging Face hub (``huggingface_hub.constants.ENDPOINT``, i.e. ``HF_ENDPOINT``)
    cannot be reached, found with one TCP connection of at most ``timeout`` seconds; None
    when it can, or when an HTTPS proxy is configured (then only a download can tell)."""
    if https_proxy_configured():
        return None
    from huggingface_hub import constants

    parts = urlsplit(constants.ENDPOINT)
    host = parts.hostname or ""
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc})"
    return None
