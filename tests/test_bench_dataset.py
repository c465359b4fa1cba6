"""Benchmark split: distractors from a distractor-only corpus keep away from the gallery."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

from bench import dataset
from tests.test_stage_local import _rgb


def _save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path)
    return path


def test_extra_distractors_are_stratified_and_never_gallery_siblings(tmp_path: Path) -> None:
    """A resized, mirrored copy of a protected photo in the extra corpus is left out (its
    pHash is within 8 bits of the gallery image's mirrored code); the rest are shared
    between sources in proportion, deterministically per seed."""
    gallery = [_save(_rgb(n), tmp_path / "main" / f"{n}.png") for n in ("astronaut", "coffee")]
    extra = tmp_path / "extra" / "images"
    copy = _save(ImageOps.mirror(_rgb("astronaut")).resize((300, 300)), extra / "a" / "copy.png")
    others = [_save(_rgb(n), extra / "a" / f"{n}.png") for n in ("camera", "rocket", "chelsea")]
    others += [_save(_rgb(n), extra / "b" / f"{n}.png") for n in ("hubble_deep_field", "page")]
    cache = tmp_path / "cache"
    picked = dataset.extra_distractors(tmp_path / "extra", 10, 5, gallery, cache)
    assert copy not in picked and sorted(picked) == sorted(others)
    two = dataset.extra_distractors(tmp_path / "extra", 2, 5, gallery, cache)
    assert len(two) == 2 and {p.parent.name for p in two} == {"a", "b"}
    assert two == dataset.extra_distractors(tmp_path / "extra", 2, 5, gallery, cache)
