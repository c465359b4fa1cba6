"""The ``heavy`` edit family: strong photo-editor filters on real photos."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import edits, edits_heavy
from bench.edits import FAMILIES, apply, heavy_op_name
from tests.conftest import skimage_photo

CORPUS = Path("/tmp/monitor-corpus/images")
CORPUS_FILES = ("opencv/000a4e8c2f_starry_night.jpg", "mate/03bcdc6560_Elephants.jpg")
IMAGES = ("astronaut", "chelsea", *CORPUS_FILES)
MIN_DIFF = 8.0
"""Smallest mean absolute difference (0-255 scale) from the input a heavy edit may leave;
a JPEG re-save or a mild blur stays well under it, the weakest heavy ops (oil, pixelate,
waves) measured 10-13 on these images."""


@functools.cache
def _image(name: str) -> Image.Image:
    if "/" not in name:
        return skimage_photo(name)
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"corpus image {path} not available")
    return Image.open(path).convert("RGB")


def _diff(out: Image.Image, im: Image.Image) -> float:
    ref = np.asarray(im.resize(out.size, Image.Resampling.BILINEAR), np.float32)
    return float(np.abs(np.asarray(out, np.float32) - ref).mean())


def test_heavy_is_the_last_family_and_combo_keeps_the_original_eight() -> None:
    assert FAMILIES == ("mild", "crop", "pad", "rotate", "overlay", "meme", "screenshot",
                        "filter", "combo", "heavy")
    assert edits._COMBO_FAMILIES == tuple(sorted(FAMILIES[:8]))
    assert "heavy" not in edits._COMBO_FAMILIES


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("op", sorted(edits_heavy.OPS))
def test_every_op_is_rgb_deterministic_and_heavy(image: str, op: str) -> None:
    im = _image(image)
    before = im.tobytes()
    w, h = im.size
    outs = []
    for seed in range(3):
        out = edits_heavy.run(im, op, random.Random(seed))
        assert out.mode == "RGB"
        if op in edits_heavy.CAPPED:
            scale = min(1.0, edits_heavy.MAX_SIDE / max(w, h))
            assert max(out.size) <= edits_heavy.MAX_SIDE
            assert abs(out.width - w * scale) <= 2 and abs(out.height - h * scale) <= 2
        else:
            assert out.size == im.size
        again = edits_heavy.run(im, op, random.Random(seed))
        assert again.size == out.size and again.tobytes() == out.tobytes()
        assert _diff(out, im) > MIN_DIFF, (op, seed)
        assert np.asarray(out).std() > 10, "a blank image keeps nothing of the picture"
        outs.append(out.tobytes())
    assert im.tobytes() == before
    if op != "invert":  # the only op without parameters
        assert len(set(outs)) > 1, "the seed must change the parameters"


def test_ops_differ_from_each_other() -> None:
    im = skimage_photo("astronaut")
    outs = {op: edits_heavy.run(im, op, random.Random(0)).tobytes() for op in edits_heavy.OPS}
    assert len(set(outs.values())) == len(edits_heavy.OPS)


def test_apply_heavy_is_seeded_and_uses_the_named_op() -> None:
    im = skimage_photo("chelsea")
    names = []
    for seed in range(40):
        name = heavy_op_name(seed)
        assert name in edits_heavy.OPS
        names.append(name)
        out = apply(im, "heavy", seed)
        assert out.mode == "RGB"
        assert out.tobytes() == apply(im, "heavy", seed).tobytes()
        rng = random.Random(f"heavy:{seed}")
        assert edits_heavy.pick(rng) == name
        assert out.tobytes() == edits_heavy.run(im, name, rng).tobytes()
    assert len(set(names)) >= 12
    assert apply(im, "heavy", 0).tobytes() != apply(im, "heavy", 1).tobytes()


def test_large_photos_are_capped() -> None:
    im = skimage_photo("astronaut").resize((2000, 1500), Image.Resampling.BICUBIC)
    for seed in range(16):
        out = apply(im, "heavy", seed)
        cap = 2000 if heavy_op_name(seed) in ("invert", "posterise") else edits_heavy.MAX_SIDE
        assert max(out.size) == cap and abs(out.width / out.height - 4 / 3) < 0.01
