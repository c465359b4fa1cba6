"""Every protected image in a collage is its own match, with its tile as the region and the
overlap both ways; the JSON lines, the database and the report carry every one of them."""

from __future__ import annotations

import functools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlmodel import Session, create_engine, select

from monitor.config import Settings
from monitor.matching.engine import Engine, GalleryEntry
from monitor.matching.stages.hash import HashStage
from monitor.matching.stages.local_regions import iou
from monitor.store.models import Candidate, MatchRow, Violation
from tests.test_cli import run
from tests.test_report import decode_uri, near_mark, parse
from tests.test_stage_local import _decode

CORPUS = Path("/tmp/monitor-corpus/images")
TILES = ("opencv/9a7171af1d_baboon.jpg", "mate/32268be432_LadyBird.jpg",
         "opencv/000a4e8c2f_starry_night.jpg")
"""Three real photos and paintings, all protected, pasted side by side."""
OTHERS = ("opencv/43ca363f2d_butterfly.jpg", "mate/c56a7b8ac1_Dune.jpg",
          "opencv/6fea5aca5c_fruits.jpg", "stellarium/00e067d914_m37.png")
"""Protected images that are not in the collage."""
PAGE, MARGIN, TILE = (1500, 620), 40, (440, 540)
"""The collage: a white page (pixels), the margin around and between tiles, a tile's
largest size."""


@functools.cache
def _open(name: str) -> Image.Image:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"corpus image {path} not available")
    return Image.open(path).convert("RGB")


def side_by_side(names: tuple[str, ...]) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """The images as tiles on a white page, left to right, each centred vertically; the
    page and each tile's box in its pixels."""
    page, boxes, x = Image.new("RGB", PAGE, "white"), [], MARGIN
    for name in names:
        tile = _open(name).copy()
        tile.thumbnail(TILE, Image.Resampling.LANCZOS)
        y = (PAGE[1] - tile.height) // 2
        page.paste(tile, (x, y))
        boxes.append((x, y, x + tile.width, y + tile.height))
        x += TILE[0] + MARGIN
    return page, boxes


def _share(box: tuple[int, int, int, int], size: tuple[int, int]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1]) / (size[0] * size[1])


def gallery_engine(names: tuple[str, ...]) -> Engine:
    """An engine (no CLIP, no SSCD: keypoints and pHash) with ``names`` as ids 0, 1, ... ."""
    engine = Engine(Settings(clip={"enabled": False}, descriptor={"enabled": False}))
    hasher = HashStage()
    for gid, name in enumerate(names):
        image = _decode(_open(name))
        engine.add(GalleryEntry(gid, hasher.compute_gallery(image), None, lambda i=image: i),
                   image)
    return engine


def test_every_protected_image_in_a_collage_is_its_own_match() -> None:
    engine = gallery_engine(TILES + OTHERS)
    page, boxes = side_by_side(TILES)
    found = {m.gallery_id: m for m in engine.match(_decode(page))}
    assert set(found) == set(range(len(TILES))), sorted(found)
    for gid, box in enumerate(boxes):
        m, name = found[gid], TILES[gid]
        assert m.inliers is not None and m.inliers >= 10, (name, m.inliers)
        assert iou(m.region, box) > 0.8, (name, m.region, box)
        assert m.query_overlap == pytest.approx(_share(box, PAGE), abs=0.01), name
        assert m.target_overlap >= 0.97, (name, m.target_overlap)
        assert iou(m.target_region, (0, 0, *_open(name).size)) >= 0.97, (name, m.target_region)


def test_a_photo_beside_a_keypoint_rich_drawing_is_found() -> None:
    """The tiger drawing and the unrelated photo take most of the candidate's keypoints (12
    land on the baboon tile) and verify; the baboon is found because region proposals not
    covered by a strong hit are checked too (307 inliers alone)."""
    tiles = ("opencv/9a7171af1d_baboon.jpg",
             "openclipart/e3f2437841_tiger_graig_ryan_smith_-_01.png",
             "openclipart/e6919dfdfe_van_gogh_s_room_enrique__01.png")
    engine = gallery_engine(tiles + OTHERS)
    page = Image.new("RGB", (1200, 1000), "white")
    for name, xy in zip((*tiles, "opencv/0b4ff3491c_building.jpg"),
                        ((40, 40), (620, 40), (40, 520), (620, 520)), strict=True):
        tile = _open(name).copy()
        tile.thumbnail((540, 440))
        page.paste(tile, xy)
    found = {m.gallery_id for m in engine.match(_decode(page))}
    assert {1, 2} <= found  # the drawings are found either way
    assert 0 in found


# -- through the CLI: JSON lines, match rows, report ---------------------------------------


@pytest.fixture
def collage_scene(deploy: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A gallery folder of the tiles and the others; a collage and a crop as candidates."""
    monkeypatch.setenv("MONITOR_CLIP__ENABLED", "false")
    g, c = deploy / "gallery", deploy / "candidates"
    g.mkdir()
    c.mkdir()
    for name in TILES + OTHERS[:2]:
        _open(name)
        shutil.copy(CORPUS / name, g / Path(name).name)
    page, boxes = side_by_side(TILES)
    page.save(c / "collage.png")
    night = _open(TILES[2])
    crop = (0, 0, round(night.width * 0.6), night.height)  # the left 60 %
    night.crop(crop).save(c / "crop.jpg", quality=92)
    return {"boxes": boxes, "crop": crop}


def test_collage_and_crop_through_jsonl_store_and_report(deploy: Path, collage_scene) -> None:
    run("init")
    run("gallery", "add", "gallery", "--collection", "portfolio")
    lines = [json.loads(x) for x in run("check", "candidates", "--format", "jsonl")
             .stdout.splitlines() if x.startswith("{")]
    by_name = {Path(x["path"]).name: x for x in lines}
    collage, crop = by_name["collage.png"], by_name["crop.jpg"]
    assert collage["verdict"] == "violation"
    matched = {Path(m["gallery_path"]).name: m for m in collage["matches"]}
    assert set(matched) == {Path(n).name for n in TILES}, sorted(matched)
    for name, box in zip(TILES, collage_scene["boxes"], strict=True):
        m = matched[Path(name).name]
        assert iou(m["region"], box) > 0.8, (name, m)
        assert m["query_overlap"] == pytest.approx(_share(box, PAGE), abs=0.01), (name, m)
        assert m["target_overlap"] >= 0.97 and len(m["target_region"]) == 4, (name, m)
    (top,) = crop["matches"]
    assert Path(top["gallery_path"]).name == Path(TILES[2]).name
    assert top["query_overlap"] == pytest.approx(1.0, abs=0.02)
    assert top["target_overlap"] == pytest.approx(0.6, abs=0.03)
    assert all(abs(a - b) <= 8 for a, b in zip(top["target_region"], collage_scene["crop"],
                                               strict=True)), top

    db = create_engine(f"sqlite:///{deploy / 'data' / 'monitor.db'}")
    with Session(db) as s:
        cand = s.exec(select(Candidate).where(Candidate.source.endswith("collage.png"))).one()
        rows = s.exec(select(MatchRow).where(MatchRow.candidate_id == cand.id)).all()
        assert len(rows) == 3
        for r in rows:
            assert r.query_overlap == pytest.approx(0.16, abs=0.06)
            assert r.target_overlap >= 0.97 and len(json.loads(r.target_region_json)) == 4
        crop_cand = s.exec(select(Candidate).where(Candidate.source.endswith("crop.jpg"))).one()
        crop_row = s.exec(select(MatchRow).where(MatchRow.candidate_id == crop_cand.id)).one()
        assert crop_row.target_overlap == pytest.approx(0.6, abs=0.03)
        assert json.loads(crop_row.target_region_json) == top["target_region"]
        crop_violation = s.exec(select(Violation).where(
            Violation.candidate_id == crop_cand.id)).one().id

    html = Path(run("report").stdout.strip().splitlines()[-1]).read_text(encoding="utf-8")
    articles = html.split("<article")[1:]
    assert sum("collage.png" in a for a in articles) == 3
    assert re.search(r"the copy fills 1[0-9]% of the found image and reproduces 100% of the "
                     r"protected image", html)
    (crop_html,) = [a for a in articles if "crop.jpg" in a]
    assert "the copy fills 100% of the found image and reproduces 6" in crop_html
    assert "outline: the part of the protected image that was copied" in crop_html
    assert "outline: the whole found image is the copy" in crop_html
    # the copied part is outlined on the protected image: its right edge at 60 % of the width
    protected = {a["data-kind"]: a for a in parse(crop_html).imgs}["protected"]
    mask = near_mark(np.asarray(decode_uri(protected["src"])))
    col = round(mask.shape[1] * 0.6)
    assert mask[:, col - 4:col + 5].any(axis=1).mean() > 0.8
    assert not mask[:, round(mask.shape[1] * 0.8):].any()  # nothing drawn beyond the copy

    shown = run("violations", "show", str(crop_violation)).stdout
    assert "reproduces 6" in shown and "of the protected image" in shown
