"""Stage ``clip`` on real photos (``skimage.data``) with a tiny random-weight CLIP.

The tiny architecture lives in ``tests/clip_tiny/monitor-tiny-vit.json`` (ViT: 64 px,
patch 16, width 64, 2 layers, 2 heads; text: 77 tokens, 2 layers; embed_dim 32)
and is registered through ``clip.model_config_dir``. The hub is offline
(``HF_HUB_OFFLINE=1``) throughout, as on the build machines.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.config import ClipSettings
from monitor.errors import StageUnavailable
from monitor.imaging.decode import DecodedImage, decode_bytes, decode_file
from monitor.matching.index.dense import DenseIndex
from monitor.matching.stages.clip import RANDOM_NOTE, ClipStage

TINY_DIR = Path(__file__).parent / "clip_tiny"
TINY = "monitor-tiny-vit"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
          "ihc.png", "camera.png", "coins.png", "moon.png", "motorcycle_left.png", "retina.jpg")


def tiny_settings(**kw: object) -> ClipSettings:
    """Random-weight tiny model (``pretrained = ""``, ``checkpoint = ""``)."""
    base = dict(model=TINY, pretrained="", checkpoint="", model_config_dir=str(TINY_DIR),
                batch_size=4, top_k=3, min_cosine=0.0)
    return ClipSettings(**{**base, **kw})


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def photos() -> list[DecodedImage]:
    data = pytest.importorskip("skimage.data")
    return [decode_file(Path(data.data_dir) / name) for name in PHOTOS]


@pytest.fixture(scope="module")
def stage() -> ClipStage:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        s = ClipStage(tiny_settings(), TINY_DIR)
        assert s.status().available, s.status()
    return s


@pytest.fixture(scope="module")
def gallery(stage: ClipStage, photos: list[DecodedImage]) -> np.ndarray:
    return stage.compute(photos)


def jpeg_copy(im: DecodedImage, factor: float = 0.6, quality: int = 60) -> DecodedImage:
    """Resize by ``factor`` and re-encode as JPEG at ``quality``, then decode again."""
    small = im.image.resize((int(im.image.width * factor), int(im.image.height * factor)),
                            Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=quality)
    return decode_bytes(buf.getvalue())


def test_random_mode_is_explicit(stage: ClipStage) -> None:
    st = stage.status()
    assert st.available and st.enabled
    assert st.reason == RANDOM_NOTE
    assert "random" in stage.fingerprint and TINY in stage.fingerprint


def test_embeddings_shape_dtype_unit_norm(stage: ClipStage, gallery: np.ndarray) -> None:
    assert stage.dim == 32
    assert gallery.shape == (len(PHOTOS), 32) and gallery.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(gallery, axis=1), 1.0, atol=1e-5)
    off_diagonal = (gallery @ gallery.T)[~np.eye(len(PHOTOS), dtype=bool)]
    assert off_diagonal.max() < 0.999, "distinct photos collapsed onto one embedding"


def test_empty_batch(stage: ClipStage) -> None:
    assert stage.compute([]).shape == (0, 32)


def test_batching_and_seed_do_not_change_embeddings(photos: list[DecodedImage],
                                                    gallery: np.ndarray) -> None:
    import torch

    torch.manual_seed(12345)  # the stage's own seed, not the global RNG, fixes the weights
    other = ClipStage(tiny_settings(batch_size=1), TINY_DIR)
    np.testing.assert_allclose(other.compute(photos[:5]), gallery[:5], atol=1e-5)


def test_self_match_top1(stage: ClipStage, gallery: np.ndarray) -> None:
    index = DenseIndex(stage.dim)
    ids = np.arange(100, 100 + len(PHOTOS))
    index.add(ids, gallery)
    hits = stage.search(gallery, index)
    for i, row in enumerate(hits):
        assert row[0].gallery_id == ids[i] and row[0].stage == "clip"
        assert row[0].cosine == pytest.approx(1.0, abs=1e-4)
        assert row[0].score == pytest.approx(1.0, abs=1e-3)
        assert len(row) <= 3 and [h.cosine for h in row] == sorted((h.cosine for h in row),
                                                                    reverse=True)


def test_resized_jpeg_copy_ranks_original_first(stage: ClipStage, photos: list[DecodedImage],
                                                gallery: np.ndarray) -> None:
    index = DenseIndex(stage.dim)
    index.add(np.arange(len(PHOTOS)), gallery)
    copies = stage.compute([jpeg_copy(im) for im in photos])
    top = [row[0].gallery_id for row in stage.search(copies, index)]
    assert top == list(range(len(PHOTOS)))


def test_min_cosine_filters_hits(gallery: np.ndarray) -> None:
    strict = ClipStage(tiny_settings(min_cosine=0.9999, top_k=5), TINY_DIR)
    index = DenseIndex(32)
    index.add(np.arange(len(PHOTOS)), gallery)
    hits = strict.search(gallery, index)
    assert [len(row) for row in hits] == [1] * len(PHOTOS)
    with pytest.raises(ValueError, match="dim"):
        strict.search(np.zeros((1, 16), np.float32), index)


def test_score_is_monotone_in_unit_interval() -> None:
    cos = np.linspace(-1.0, 1.0, 81)
    scores = [ClipStage.score(c) for c in cos]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores)
    assert ClipStage.score(1.0) == 1.0 and ClipStage.score(0.0) == 0.0


def test_encode_text(stage: ClipStage) -> None:
    text = stage.encode_text(["a cat on a sofa", "a rocket on the launch pad", "a cup of coffee"])
    assert text.shape == (3, 32) and text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    assert np.abs(text[0] - text[1]).max() > 1e-3


def test_default_weights_offline_fail_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           photos: list[DecodedImage]) -> None:
    pytest.importorskip("open_clip")  # import time is not part of the failure path
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    stage = ClipStage(ClipSettings(), tmp_path)
    t0 = time.perf_counter()
    st = stage.status()
    assert time.perf_counter() - t0 < 2.0
    assert st.enabled and not st.available
    assert "ViT-B-32/laion2b_s34b_b79k" in st.reason and "cache" in st.reason
    assert "clip.checkpoint" in st.fix and "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in st.fix
    assert stage.ready() is False  # not required: callers skip the stage
    with pytest.raises(StageUnavailable):
        stage.compute(photos[:1])

    required = ClipStage(ClipSettings(required=True), tmp_path)
    with pytest.raises(StageUnavailable, match="ViT-B-32") as err:
        required.compute(photos[:1])
    assert err.value.stage == "clip" and err.value.fix
    with pytest.raises(StageUnavailable):
        required.ready()


def test_missing_checkpoint_reason(tmp_path: Path) -> None:
    st = ClipStage(tiny_settings(checkpoint="weights/missing.bin"), tmp_path).status()
    assert not st.available
    assert str(tmp_path / "weights" / "missing.bin") in st.reason and "does not exist" in st.reason
    assert "clip.checkpoint" in st.fix


def test_checkpoint_file_loads_same_weights(stage: ClipStage, photos: list[DecodedImage],
                                            gallery: np.ndarray, tmp_path: Path) -> None:
    import torch

    torch.save(stage.require().model.state_dict(), tmp_path / "tiny.pt")
    loaded = ClipStage(tiny_settings(checkpoint="tiny.pt"), tmp_path)
    st = loaded.status()
    assert st.available and st.reason == ""
    assert loaded.fingerprint != stage.fingerprint and "tiny.pt" in loaded.fingerprint
    np.testing.assert_allclose(loaded.compute(photos[:3]), gallery[:3], atol=1e-5)


def test_corrupt_checkpoint_reason(tmp_path: Path) -> None:
    (tmp_path / "bad.bin").write_bytes(b"not a checkpoint")
    st = ClipStage(tiny_settings(checkpoint="bad.bin"), tmp_path).status()
    assert not st.available and "could not be loaded into monitor-tiny-vit" in st.reason


def test_cached_tag_weights_are_used_without_network(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """A tag whose file is in the HF cache loads from that file (here a corrupt one)."""
    repo = tmp_path / "hub" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    weights = repo / "snapshots" / commit / "open_clip_pytorch_model.bin"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"truncated download")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    st = ClipStage(ClipSettings(), tmp_path).status()
    assert not st.available and str(weights) in st.reason and "ViT-B-32" in st.reason


def test_unknown_names_and_disabled(tmp_path: Path) -> None:
    st = ClipStage(ClipSettings(model="No-Such-Model"), tmp_path).status()
    assert not st.available and "No-Such-Model" in st.reason
    st = ClipStage(ClipSettings(pretrained="no_such_tag"), tmp_path).status()
    assert not st.available and "no_such_tag" in st.reason and "laion2b_s34b_b79k" in st.reason
    off = ClipStage(tiny_settings(enabled=False), TINY_DIR)
    assert off.status().enabled is False and off.ready() is False
    with pytest.raises(StageUnavailable, match="disabled"):
        off.compute([])


def test_fingerprint_tracks_model_config(tmp_path: Path) -> None:
    cfg = tmp_path / f"{TINY}.json"
    cfg.write_bytes((TINY_DIR / f"{TINY}.json").read_bytes())
    before = ClipStage(tiny_settings(model_config_dir=str(tmp_path)), tmp_path).fingerprint
    cfg.write_text(cfg.read_text().replace('"layers": 2', '"layers": 3', 1))
    after = ClipStage(tiny_settings(model_config_dir=str(tmp_path)), tmp_path).fingerprint
    assert before != after
    assert ClipStage(ClipSettings(), tmp_path).fingerprint.endswith("pretrained=laion2b_s34b_b79k")


def test_batched_preprocess_equals_models_own(stage: ClipStage, photos: list[DecodedImage]) -> None:
    import torch

    loaded = stage.require()
    own = torch.stack([loaded.preprocess(stage._reduced(im, loaded.side)) for im in photos])
    assert tuple(own.shape) == (len(PHOTOS), 3, 64, 64)
    torch.testing.assert_close(stage.pixels(photos), own, atol=1e-6, rtol=0)


def test_unreachable_hub_is_said_at_once_without_retries(tmp_path) -> None:
    """Where the hub cannot be reached and HF_HUB_OFFLINE is not set, the stage says so
    from one connection attempt instead of the hub client's retries (issue 20: every
    command waited ~46 s with ~46 retry warnings). A real `monitor doctor` process, the
    hub endpoint a closed loopback port."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "MONITOR_CONFIG", "HTTPS_PROXY", "https_proxy",
                        "ALL_PROXY", "all_proxy")}
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf"),
            "COLUMNS": "240"}
    run = subprocess.run([sys.executable, "-m", "monitor", "doctor"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert f"127.0.0.1:{port} cannot be reached" in out, out
    assert "retry" not in out.lower(), out


def test_without_pytorch_the_stage_says_which_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The default install leaves PyTorch out (``monitor[clip]``): the stage is then
    unavailable with that install command as its fix, and ``required`` makes it fatal."""
    for name in ("open_clip", "torch"):
        monkeypatch.setitem(__import__("sys").modules, name, None)  # import raises
    st = ClipStage(tiny_settings(), TINY_DIR).status()
    assert st.enabled and not st.available
    assert "not installed" in st.reason and "monitor[clip]" in st.fix
    with pytest.raises(StageUnavailable):
        ClipStage(tiny_settings(required=True), TINY_DIR).ready()
