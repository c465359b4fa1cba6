"""End to end through the CLI on real photos: init, gallery, check --format jsonl, report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from sqlmodel import Session, create_engine, select
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_settings
from monitor.store.models import Candidate, Scan, Violation

MATCH_KEYS = {"gallery_id", "gallery_path", "collection", "stage", "score", "distance", "cosine",
              "similarity", "normalised", "inliers", "region", "query_overlap",
              "target_overlap", "target_region", "verdict", "rule"}
runner = CliRunner()


def run(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (args, result.output, result.exception)
    return result


@pytest.fixture
def scene(deploy: Path, photos, others) -> dict[str, tuple[str, tuple[int, int, int, int] | None]]:
    """Gallery files plus candidates; maps candidate name → (gallery name, region of the copy)."""
    g, c = deploy / "gallery", deploy / "candidates"
    g.mkdir()
    c.mkdir()
    for name, im in photos.items():
        im.save(g / f"{name}.png")
    astro, coffee, rocket = photos["astronaut"], photos["coffee"], photos["rocket"]
    astro.crop((100, 60, 420, 400)).save(c / "crop.jpg", quality=75)
    ImageOps.expand(coffee, border=(150, 90, 150, 90), fill=(20, 200, 40)).save(c / "pad.jpg")
    rocket.transpose(Image.Transpose.FLIP_LEFT_RIGHT).rotate(
        23, expand=True, fillcolor=(255, 255, 255)).save(c / "turned.jpg", quality=80)
    for name, im in list(others.items())[:4]:
        im.save(c / f"other-{name}.jpg")
    (c / "empty.jpg").write_bytes(b"")
    (c / "page.jpg").write_bytes(b"<!doctype html><html>hello</html>")
    data = (g / "coffee.png").read_bytes()
    (c / "truncated.png").write_bytes(data[: len(data) // 3])
    return {"crop.jpg": ("astronaut", None), "pad.jpg": ("coffee", (150, 90, 750, 490)),
            "turned.jpg": ("rocket", None)}


def test_main_job_end_to_end(deploy: Path, scene) -> None:
    run("init")
    assert (deploy / "config.toml").exists() and (deploy / "rules" / "default.toml").exists()
    out = run("gallery", "add", "gallery", "--collection", "portfolio", "--meta", "owner=me")
    assert "6 added" in out.output
    assert "0 added, 6 already present" in run("gallery", "add", "gallery",
                                               "--collection", "portfolio").output

    lines = [json.loads(x) for x in run("check", "candidates", "--format", "jsonl", code=3)
             .stdout.splitlines() if x.startswith("{")]  # 3: three files are not images
    by_name = {Path(x["path"]).name: x for x in lines}
    assert len(lines) == 10
    for x in lines:
        assert set(x) == {"path", "sha256", "verdict", "matches", "error"}
        for m in x["matches"]:
            assert set(m) == MATCH_KEYS and 0.0 <= m["score"] <= 1.0
    for name, (gallery, box) in scene.items():
        rec = by_name[name]
        assert rec["verdict"] == "violation", rec
        top = rec["matches"][0]
        assert Path(top["gallery_path"]).stem == gallery and top["collection"] == "portfolio"
        assert top["inliers"] and top["inliers"] >= 16 and len(top["region"]) == 4
        if box:  # the region found is where the copy sits, borders excluded
            assert all(abs(a - b) <= 12 for a, b in zip(top["region"], box, strict=True)), top
    for name in ("other-camera.jpg", "other-coins.jpg", "other-moon.jpg", "other-page.jpg"):
        assert by_name[name]["verdict"] == "clean" and by_name[name]["matches"] == []
    assert re.search("0 bytes", by_name["empty.jpg"]["error"])
    assert "HTML" in by_name["page.jpg"]["error"]
    assert "truncated" in by_name["truncated.png"]["error"]

    db = create_engine(load_settings(deploy / "config.toml").database_url)
    with Session(db) as s:
        errors = {Path(c.source).name: c.error_code for c in
                  s.exec(select(Candidate).where(Candidate.status == "error")).all()}
        assert errors == {"empty.jpg": "empty", "page.jpg": "unsupported_format",
                          "truncated.png": "corrupt"}
        assert len(s.exec(select(Violation)).all()) == 3
    run("check", "candidates", "--format", "jsonl", code=3)  # idempotent: no duplicate rows
    with Session(db) as s:
        assert len(s.exec(select(Violation)).all()) == 3
        assert len(s.exec(select(Candidate)).all()) == 10

    html_path = Path(run("report").stdout.strip().splitlines()[-1])
    html = html_path.read_text()
    assert html_path.parent == deploy / "reports"
    assert len(re.findall(r'src="data:image/[a-z]+;base64,', html)) >= 6
    assert by_name["pad.jpg"]["sha256"] in html


def test_doctor_search_dupes_remove_scan(deploy: Path, scene, photos) -> None:
    photos["astronaut"].resize((256, 256)).save(deploy / "gallery" / "astronaut-small.jpg")
    run("gallery", "add", "gallery", "--collection", "portfolio")
    doctor = run("doctor").output
    assert re.search(r"stage clip\s+.*unavailable", doctor) and "stage local" in doctor
    assert re.search(r"gallery\s+.*ok\s+.*portfolio: 7 image", doctor), doctor
    flat = re.sub(r"[│\s]+", " ", doctor)  # the table wraps long details
    assert "config defaults not found: defaults in use" in flat, flat
    assert "pHash: 7 (flat), SSCD: 7 (flat)" in flat, flat
    assert "cascade: verify at confidence >= 0.01 or SSCD normalised >= 0.050" in flat, flat
    assert re.search(r"verification records: 7 \([\d.]+ MB on disk\), keypoint vote: off",
                     flat), flat  # SSCD retrieval runs: the vote is not needed
    assert re.search(r"stage descriptor\s+.*available\s+.*SSCD sscd_distilled", doctor)
    reindexed = run("gallery", "reindex").output
    assert re.search(r"hash: 7 image\(s\), flat, [\d.]+ s", reindexed), reindexed
    assert re.search(r"descriptor: 7 image\(s\), flat", reindexed), reindexed
    bad = run("search", "--text", "a red rocket", code=2)
    assert "clip" in bad.output and "unavailable" in bad.output
    dupes = run("dupes", "portfolio").stdout
    assert "astronaut.png" in dupes and "astronaut-small.jpg" in dupes
    listed = run("gallery", "list").stdout
    gid = re.search(r"(\d+)\s+│\s*portfolio\s*│\s*\w+\s*│\s*256x256", listed).group(1)
    run("gallery", "remove", gid)
    assert "256x256" not in run("gallery", "list").stdout
    run("gallery", "remove", "99999", code=2)

    out = run("scan", "candidates", code=3)  # 3: three candidates could not be checked
    assert "report:" in out.output
    db = create_engine(load_settings(deploy / "config.toml").database_url)
    with Session(db) as s:
        scan = s.exec(select(Scan)).one()
        assert (scan.status, scan.checked, scan.errors, scan.violations) == ("finished", 7, 3, 3)
        assert "clip unavailable" in scan.stages_note


def test_required_clip_is_fatal(deploy: Path, scene) -> None:
    (deploy / "config.toml").write_text("[clip]\nrequired = true\n")
    out = run("check", "candidates/crop.jpg", code=2)
    assert "stage_unavailable" in out.output


def test_bad_config_is_a_clear_error(deploy: Path) -> None:
    (deploy / "config.toml").write_text("[hash]\nmax_distance = 'x'\n")
    out = run("gallery", "list", code=2)
    assert "hash.max_distance" in out.output


def test_gallery_add_notes_pictures_the_hash_cannot_match(deploy: Path, photos) -> None:
    """A flat picture (a plain vertical gradient, as blank wallpapers are) has a pHash of a
    few set bits: adding it says so; a real photo adds without a note."""
    g = deploy / "gallery"
    g.mkdir()
    photos["coffee"].save(g / "coffee.png")
    ramp = np.repeat(np.linspace(40, 220, 400, dtype=np.uint8)[:, None], 600, axis=1)
    Image.fromarray(ramp).convert("RGB").save(g / "wallpaper.png")
    run("init")
    out = run("gallery", "add", "gallery").output
    assert "2 added" in out
    notes = [line for line in out.splitlines() if line.startswith("note")]
    assert len(notes) == 1 and "wallpaper.png" in notes[0] and "of 64 bits" in notes[0]


def test_exit_status_tells_cron_what_was_found(deploy: Path, scene) -> None:
    """0 when all was checked (whatever was found, unless --fail-on names it), 1 for a
    verdict named by --fail-on, 3 when a candidate could not be checked and --fail-on is
    absent or names error (issue 20: `monitor check nosuch/` exited 0)."""
    run("gallery", "add", "gallery", "--collection", "portfolio")
    missing = run("check", "nosuch/", code=3)
    assert "nosuch" in missing.output
    run("check", "candidates/crop.jpg")  # a violation, but nobody asked to fail on it
    run("check", "candidates/crop.jpg", "--fail-on", "violation", code=1)
    run("check", "candidates/other-camera.jpg", "--fail-on", "violation")
    run("check", "candidates/crop.jpg", "candidates/empty.jpg", "--fail-on", "violation",
        "--fail-on", "error", code=3)  # an input error outranks what was found
    run("check", "candidates/crop.jpg", "candidates/empty.jpg", "--fail-on", "violation",
        code=1)  # --fail-on names what fails the run: here not the empty file
    run("check", "candidates/other-camera.jpg", "candidates/empty.jpg", "--fail-on",
        "violation")  # nothing it names happened
    run("check", "candidates/empty.jpg", code=3)  # the default: errors fail
    run("check", "candidates/crop.jpg", "--fail-on", "bogus", code=2)


def test_check_warns_when_nothing_is_protected(deploy: Path, others) -> None:
    """An empty gallery (or an unknown collection) makes every candidate clean: say so."""
    name, im = next(iter(others.items()))
    im.save(deploy / "photo.jpg")
    res = run("check", "photo.jpg")
    assert "no protected image" in res.output and "monitor gallery add" in res.output
    im.save(deploy / "g.png")
    run("gallery", "add", "g.png", "--collection", "mine")
    assert "no protected image" not in run("check", "photo.jpg").output
    other = runner.invoke(app, ["check", "photo.jpg", "--collection", "other"])
    assert "collection 'other' holds no protected image" in other.output


def test_since_accepts_relative_and_named_times() -> None:
    from datetime import datetime, timedelta

    import typer

    from monitor.cli.main import when

    now = datetime.utcnow()
    assert abs(when("7d", "--since") - (now - timedelta(days=7))) < timedelta(seconds=5)
    assert abs(when("12h", "--since") - (now - timedelta(hours=12))) < timedelta(seconds=5)
    assert when("yesterday", "--since") == when("today", "--since") - timedelta(days=1)
    assert when("2026-11-01", "--since") == datetime(2026, 11, 1)
    assert when("2026-11-01T08:00+01:00", "--since") == datetime(2026, 11, 1, 7)
    with pytest.raises(typer.BadParameter, match="7d"):
        when("last tuesday", "--since")


def test_report_since_bad_value_is_a_usage_error(deploy: Path) -> None:
    res = runner.invoke(app, ["report", "--since", "soonish"])
    assert res.exit_code == 2 and "today or yesterday" in res.output


def test_dupes_links_the_same_artwork_by_descriptor_and_shows_why(deploy: Path, photos) -> None:
    """A cropped, shrunk, faded copy of a gallery photo is too far for a 6-bit pHash link
    (16 bits) but its SSCD similarity (0.90)
    links it; every link prints its pHash distance and SSCD similarity."""
    from PIL import ImageEnhance

    g = deploy / "g"
    g.mkdir()
    astro = photos["astronaut"]
    astro.save(g / "astronaut.png")
    w, h = astro.size
    ImageEnhance.Color(astro.crop((w // 10, 0, w, h - h // 10)).resize((300, 300))).enhance(
        0.3).save(g / "astronaut-crop.jpg", quality=70)  # cropped, smaller, faded
    photos["coffee"].save(g / "coffee.png")
    run("gallery", "add", "g", "--collection", "art")
    out = run("dupes", "art").stdout
    link = re.search(r"~ \d+: pHash (\d+) bits, SSCD similarity (0\.\d+)", out)
    assert "astronaut-crop.jpg" in out and "coffee.png" not in out and link, out
    assert int(link.group(1)) > 6 and float(link.group(2)) >= 0.85
    assert "astronaut-crop.jpg" not in run("dupes", "art", "--min-similarity", "0.999").stdout


def test_source_scan_learns_its_total(deploy: Path, photos, others) -> None:
    """A configured source's scan tells the progress bar what it found, batch by batch,
    and every found item advances it once, checked or unchanged (issue 20: `scan SOURCE`
    had no total)."""
    from monitor.services.sources import run_source
    from monitor.services.workspace import Workspace

    (deploy / "config.toml").write_text(
        '[clip]\nenabled = false\n[[sources]]\nname = "drop"\nkind = "folder"\n'
        'location = "drop"\n')
    (deploy / "drop").mkdir()
    for name, im in list(others.items())[:3]:
        im.save(deploy / "drop" / f"{name}.png")
    ws = Workspace(load_settings(deploy / "config.toml"))
    src = ws.settings.source("drop")
    found, done = [], []
    run_source(ws, src, progress=done.append, discovered=found.append)
    assert sum(found) == 3 and len(done) == 3 and all(r is not None for r in done)
    (deploy / "drop" / "new.png").write_bytes((deploy / "drop" / "camera.png").read_bytes())
    found, done = [], []  # unchanged files are skipped by discovery; only the new one counts
    run_source(ws, src, progress=done.append, discovered=found.append)
    assert sum(found) == len(done) == 1
    ws.db.dispose()
