"""Building the open_clip model of the ``clip`` stage (:mod:`monitor.matching.stages.clip`).

Resolves the ``[clip]`` settings to weights (a checkpoint file, a pretrained tag found in
the Hugging Face cache or downloaded, or random weights drawn with :data:`RANDOM_SEED`),
registers a custom ``model_config_dir``, builds the model with its preprocess and
tokenizer on the CPU, and turns every failure into a
:class:`~monitor.errors.ModelLoadFailure` that names the fix. :func:`fingerprint`
identifies the weights without loading anything. PyTorch and open_clip are imported by
:func:`load` only, never at import time; the Hugging Face cache and offline helpers, the
loaded model record and the batched preprocess are in
:mod:`monitor.matching.stages.clip_weights`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from monitor.config import ClipSettings
from monitor.errors import ModelLoadFailure as LoadFailure
from monitor.matching.stages.clip_weights import (
    Loaded,
    batch_steps,
    cached_weights,
    hub_cache,
    hub_offline,
    hub_unreachable,
)

RANDOM_SEED = 0
"""``torch.manual_seed`` (in a forked RNG) for building the model: random weights repeat."""

RANDOM_NOTE = "random weights: for tests only"
_REGISTRY_LOCK = threading.Lock()
_REGISTERED: set[str] = set()


def resolve(root: Path, value: str) -> Path:
    """``value`` (``~`` expanded) as a path; a relative one resolves under ``root``."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


def config_file(settings: ClipSettings, root: Path) -> Path | None:
    """``<model_config_dir>/<model>.json`` when ``model_config_dir`` is set and the file
    exists, else None."""
    if not settings.model_config_dir:
        return None
    path = resolve(root, settings.model_config_dir) / f"{settings.model}.json"
    return path if path.is_file() else None


def fingerprint(settings: ClipSettings, root: Path) -> str:
    """``<model>:<weights>``, the model and weights part of the stage's fingerprint; cheap,
    loads nothing. A custom model config contributes its file's sha256; a checkpoint its
    path and size."""
    s, cfg = settings, config_file(settings, root)
    model = s.model + (f"#{hashlib.sha256(cfg.read_bytes()).hexdigest()[:12]}" if cfg else "")
    if s.checkpoint:
        path = resolve(root, s.checkpoint)
        size = path.stat().st_size if path.is_file() else -1
        weights = f"checkpoint={path}:{size}"
    else:
        weights = f"pretrained={s.pretrained}" if s.pretrained else f"random-seed{RANDOM_SEED}"
    return f"{model}:{weights}"


def load(settings: ClipSettings, root: Path) -> Loaded:
    """Import PyTorch and open_clip, build ``settings.model`` with its weights on the CPU
    (eval mode) and probe its embedding width with one blank image.

    Raises:
        ModelLoadFailure: PyTorch or open_clip missing, unknown model or tag, weights
            neither cached nor downloadable, or a model that cannot be built.
    """
    try:
        import open_clip
        import torch
    except ImportError as exc:  # the default install leaves PyTorch out
        raise LoadFailure(f"PyTorch and open_clip are not installed ({exc.name} missing)",
                          "pip install 'monitor[clip]' (PyTorch and open_clip), or set "
                          "clip.enabled = false") from exc

    s = settings
    _register_configs(settings, root, open_clip)
    if open_clip.get_model_config(s.model) is None:
        raise LoadFailure(f"open_clip has no model config named '{s.model}'",
                          "use a name from open_clip.list_models() (e.g. 'ViT-B-32') or put "
                          f"{s.model}.json in clip.model_config_dir")
    weights, pp = _weights(settings, root, open_clip)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(
                s.model, pretrained=weights, device="cpu", pretrained_text=False,
                image_mean=pp.get("mean"), image_std=pp.get("std"),
                image_interpolation=pp.get("interpolation"),
                image_resize_mode=pp.get("resize_mode"))
        tokenizer = open_clip.get_tokenizer(s.model)
    except Exception as exc:
        raise _explain(settings, exc, weights) from exc
    model.eval()
    size = model.visual.preprocess_cfg["size"]
    side = max(size) if isinstance(size, (tuple, list)) else int(size)
    with torch.inference_mode():
        dim = int(model.encode_image(torch.zeros(1, 3, side, side)).shape[-1])
    return Loaded(model, preprocess, batch_steps(preprocess), tokenizer, dim, side,
                  "" if weights else RANDOM_NOTE)


def _register_configs(settings: ClipSettings, root: Path, open_clip: Any) -> None:
    if not settings.model_config_dir:
        return
    folder = resolve(root, settings.model_config_dir)
    if not folder.is_dir():
        raise LoadFailure(f"clip.model_config_dir {folder} is not a folder",
                          "create it or set clip.model_config_dir = ''")
    with _REGISTRY_LOCK:
        if str(folder) not in _REGISTERED:
            open_clip.add_model_config(folder)
            _REGISTERED.add(str(folder))


def _weights(settings: ClipSettings, root: Path, open_clip: Any) -> tuple[str | None, dict]:
    """``(pretrained argument for open_clip, preprocess overrides)``; raises ``LoadFailure``."""
    s = settings
    if s.checkpoint:
        path = resolve(root, s.checkpoint)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise LoadFailure(f"clip.checkpoint {path} {what}",
                              "set clip.checkpoint to an open_clip weights file "
                              f"(.bin/.pt/.safetensors) for {s.model}, or empty it to use "
                              "clip.pretrained")
        return str(path), {}
    if not s.pretrained:
        return None, {}
    cfg = open_clip.get_pretrained_cfg(s.model, s.pretrained)
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(s.model)) or "none"
        raise LoadFailure(f"'{s.pretrained}' is not an open_clip pretrained tag of {s.model} "
                          f"(known: {known})",
                          "set clip.pretrained to a known tag, or clip.checkpoint to a file")
    overrides = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    cached = cached_weights(cfg)
    if cached:
        return cached, overrides
    if hub_offline():
        raise LoadFailure(f"weights for {s.model}/{s.pretrained} are not in the Hugging Face "
                          f"cache ({hub_cache()}) and the hub cannot be reached "
                          "(HF_HUB_OFFLINE is set)", _download_fix(cfg))
    if why := hub_unreachable():  # fail at once instead of after the hub's retries
        raise LoadFailure(f"weights for {s.model}/{s.pretrained} are not in the Hugging Face "
                          f"cache ({hub_cache()}) and the hub {why}", _download_fix(cfg))
    return s.pretrained, {}


def _download_fix(cfg: dict) -> str:
    repo, name = os.path.split(cfg.get("hf_hub", ""))
    how = f" (`hf download {repo} {name or 'open_clip_pytorch_model.bin'}`)" if repo else ""
    return (f"download once with network access{how}, or set "
            "clip.checkpoint = '/path/to/open_clip_pytorch_model.bin'")


def _explain(settings: ClipSettings, exc: Exception, weights: str | None) -> LoadFailure:
    s, why = settings, str(exc).strip().split("\n")[0][:300] or type(exc).__name__
    if weights and weights == s.pretrained:
        from open_clip import get_pretrained_cfg

        return LoadFailure(f"weights for {s.model}/{s.pretrained} are not in the Hugging Face "
                           f"cache ({hub_cache()}) and downloading them failed: {why}",
                           _download_fix(get_pretrained_cfg(s.model, s.pretrained)))
    if weights:
        return LoadFailure(f"weights file {weights} could not be loaded into {s.model}: {why}",
                           f"use an open_clip checkpoint trained for clip.model = '{s.model}'")
    return LoadFailure(f"open_clip could not build {s.model}: {why}",
                       "check clip.model and clip.model_config_dir")
