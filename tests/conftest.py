"""Shared fixtures: real photos from scikit-image and an isolated workspace."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
          "immunohistochemistry")
OTHERS = ("camera", "coins", "moon", "page", "horse", "brick", "grass", "clock")


def skimage_photo(name: str) -> Image.Image:
    """A real image bundled in scikit-image's wheel, as RGB."""
    import skimage.data

    arr = getattr(skimage.data, name)().astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """Colour photos used as the protected gallery."""
    return {n: skimage_photo(n) for n in PHOTOS}


@pytest.fixture(scope="session")
def others() -> dict[str, Image.Image]:
    """Real images that are not in the gallery (distractors)."""
    return {n: skimage_photo(n) for n in OTHERS}


def encode(im: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    """Bytes of ``im`` saved as ``fmt``."""
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub downloads, and no config from the caller's environment."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)


@pytest.fixture
def deploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty deployment folder as the working directory."""
    root = tmp_path / "deploy"
    root.mkdir()
    monkeypatch.chdir(root)
    return root
