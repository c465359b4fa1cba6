"""Evidence outlives the gallery: removing a reviewed image archives it; purge deletes it.

Real violations through the real pipeline (scikit-image photos, re-encoded copies), the
CLI through Typer's runner, and the HTTP API and dashboard of a real daemon on loopback.
"""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import pytest
from PIL import ImageEnhance
from sqlmodel import select
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_settings
from monitor.outcome.report import write_report
from monitor.services.gallery import add_paths, list_gallery, remove
from monitor.services.review import history
from monitor.services.violations import get_item
from monitor.services.workspace import Workspace
from monitor.store.models import Alert, Candidate, MatchRow, ProtectedImage, Violation
from tests.conftest import encode, skimage_photo
from tests.loopback import serve, wait_done
from tests.violations_data import copy_of, make_ws, populate, record

ASTRO_URL = "https://pirate.example/img/astro.jpg"
HOOK = '[alerts]\nwebhook_url = "https://hooks.example.org/monitor"\n'


@pytest.fixture
def ws(deploy: Path, photos, others) -> Workspace:
    """Three violations (astronaut #1, chelsea #2, coffee #3), each with a webhook alert."""
    w = make_ws(deploy, photos, extra=HOOK)
    populate(w, photos, others)
    return w


def _gid(ws: Workspace, name: str) -> int:
    return next(r.id for r, _ in list_gallery(ws, archived=True) if r.path.endswith(name))


def _sha(ws: Workspace, gid: int) -> str:
    with ws.session() as s:
        return s.get(ProtectedImage, gid).sha256


def _cli(*args: str, code: int = 0):
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == code, (args, res.output)
    assert isinstance(res.exception, SystemExit | None), res.exception
    return res


def test_remove_after_review_archives_and_keeps_the_evidence(ws, deploy: Path, photos) -> None:
    _cli("violations", "set-status", "1", "confirmed", "--actor", "alice")
    astro, chelsea = _gid(ws, "astronaut.png"), _gid(ws, "chelsea.png")
    res = _cli("gallery", "remove", str(astro), _sha(ws, chelsea)[:10])
    assert re.search(r"archived 2 image\(s\) with violations: \d+, \d+", res.output)

    fresh = Workspace(load_settings())
    with fresh.session() as s:
        row = s.get(ProtectedImage, astro)
        assert row.archived_at is not None and row.archived_by == getpass.getuser()
        assert s.get(Violation, 1).status == "confirmed" and s.get(Violation, 2) is not None
        kept = s.exec(select(Alert).where(Alert.violation_id.in_([1, 2]))).all()
        assert sorted(a.kind for a in kept) == ["immediate", "immediate", "webhook", "webhook"]
    assert [(e.actor, e.to_status) for e in history(fresh, 1)] == [("alice", "confirmed")]
    item = get_item(fresh, 1)
    assert (fresh.data_dir / item.evidence_path).is_file()
    assert (fresh.data_dir / item.stored_path).is_file()

    # out of listings and matching, still named for the old violations
    assert {r.id for r, _ in list_gallery(fresh)} == {_gid(fresh, "coffee.png")}
    assert "astronaut.png" not in _cli("gallery", "list").stdout
    assert "by " + getpass.getuser() in _cli("gallery", "list", "--archived").stdout
    assert fresh.gallery_info()[astro][0].endswith("astronaut.png")
    again = record(fresh, "https://other.example/astro.jpg", copy_of(photos["astronaut"], 0.5))
    assert again.verdict.value == "clean", again
    assert astro not in [o.match.gallery_id for o in again.outcomes]

    # reports, the CLI and takedowns still render the archived image's violations
    html = write_report(fresh).read_text()
    assert ASTRO_URL in html and "astronaut.png" in html
    assert ASTRO_URL in _cli("violations", "show", "1").stdout
    assert "astronaut.png" in _cli("violations", "takedown", "1").stdout
    assert len(_cli("violations", "list", "--format", "jsonl").stdout.splitlines()) == 3

    # adding the same content again restores it (same id, matched again)
    res = _cli("gallery", "add", str(deploy / "g" / "astronaut.png"), "--collection",
               "portfolio")
    assert "restored from the archive" in res.output
    back = Workspace(load_settings())
    assert astro in {r.id for r, _ in list_gallery(back)}
    assert record(back, "https://other.example/astro2.jpg",
                  copy_of(photos["astronaut"], 0.45)).verdict.value == "violation"


def test_images_without_violations_are_still_deleted(ws, deploy: Path, photos) -> None:
    photos["rocket"].save(deploy / "rocket.png")
    [added] = add_paths(ws, [str(deploy / "rocket.png")], "portfolio")
    done = remove(ws, [str(added.gallery_id)], "bob")
    assert (done.deleted, done.archived) == ([added.gallery_id], [])
    with ws.session() as s:
        assert s.get(ProtectedImage, added.gallery_id) is None
    _cli("gallery", "remove", str(added.gallery_id), code=2)


def test_purge_deletes_archived_images_with_their_evidence(ws, deploy: Path) -> None:
    astro, coffee = _gid(ws, "astronaut.png"), _gid(ws, "coffee.png")
    _cli("violations", "set-status", "1", "confirmed")
    remove(ws, [str(astro)], "alice")
    item = get_item(ws, 1)
    evidence, stored = ws.data_dir / item.evidence_path, ws.data_dir / item.stored_path

    assert "--yes" in _cli("gallery", "purge", str(astro), code=2).output
    assert "still in the gallery" in _cli("gallery", "purge", str(coffee), "--yes",
                                          code=2).output
    with ws.session() as s:  # nothing done by the refusals
        assert s.get(ProtectedImage, astro) is not None and s.get(Violation, 1) is not None
    assert evidence.is_file()

    res = _cli("gallery", "purge", str(astro), "--yes")
    assert "purged 1 image(s)" in res.output and "1 violation(s), 1 evidence file(s)" in res.output
    with ws.session() as s:
        assert s.get(ProtectedImage, astro) is None and s.get(Violation, 1) is None
        assert s.exec(select(MatchRow).where(MatchRow.protected_id == astro)).all() == []
        assert s.exec(select(Alert).where(Alert.violation_id == 1)).all() == []
        cand = s.exec(select(Candidate).where(Candidate.source == ASTRO_URL)).one()
        assert cand.evidence_path is None  # the candidate stays as a record of the check
        assert len(s.exec(select(Alert)).all()) == 4  # mail and webhook, the other 2
    assert history(ws, 1) == []
    assert not evidence.exists() and not stored.exists()
    assert (ws.data_dir / get_item(ws, 3).evidence_path).is_file()
    html = write_report(ws).read_text()
    assert ASTRO_URL not in html and "https://copycat.example/c.jpg" in html
    _cli("gallery", "purge", str(astro), "--yes", code=2)


def test_http_delete_of_a_reviewed_image_archives_it(tmp_path: Path) -> None:
    daemon, client = serve(tmp_path / "srv")
    try:
        im = skimage_photo("chelsea")
        im = ImageEnhance.Color(im.resize((im.width // 2, im.height // 2))).enhance(1.1)
        data = encode(im, "JPEG", quality=80)
        r = client.post("/v1/submissions", content=data, headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 202, r.text
        job = wait_done(client, r.json()["id"])
        [v] = [i for i in client.get("/v1/violations").json()["items"]
               if i["candidate"]["id"] == job["candidate_id"]]
        gid = v["protected"]["id"]
        ok = client.post(f"/v1/violations/{v['id']}/status", json={"status": "confirmed"})
        assert ok.status_code == 200, ok.text

        r = client.delete(f"/v1/gallery/{gid}")
        assert r.status_code == 200, r.text
        assert r.json() == {"removed": [gid], "archived": [gid]}
        assert gid not in [i["id"] for i in client.get("/v1/gallery").json()["items"]]
        [arch] = [i for i in client.get("/v1/gallery", params={"archived": "true"})
                  .json()["items"] if i["id"] == gid]
        assert arch["archived_by"] == "api" and arch["archived_at"]
        hits = client.post("/v1/search", content=data, headers={"Content-Type": "image/jpeg"})
        assert hits.status_code == 200 and gid not in [
            int(m["gallery_id"]) for m in hits.json()["matches"]]
        listed = client.get("/v1/violations").json()["items"]
        assert [i["status"] for i in listed if i["id"] == v["id"]] == ["confirmed"]
        page = client.get(f"/violations/{v['id']}")
        assert page.status_code == 200 and "chelsea.png" in page.text
        assert client.delete(f"/v1/gallery/{gid}").status_code == 404
    finally:
        client.close()
        daemon.shutdown()


def test_gallery_takes_a_100_megapixel_png_that_candidates_may_not_be(deploy: Path,
                                                                      photos) -> None:
    """A medium-format photo (here a real photo enlarged to 10,250 x 10,250 = 105 Mpx, PNG)
    is trusted gallery input under decode.gallery_max_pixels (150 Mpx); the same file as a
    candidate is refused as over decode.max_pixels (80 Mpx), with a clear error."""
    from monitor.config import load_settings
    from monitor.services.check import check
    from monitor.services.gallery import add_paths
    from monitor.services.workspace import Workspace

    big = photos["astronaut"].convert("L").resize((10_250, 10_250))
    big.save(deploy / "huge.png", compress_level=1)
    del big
    ws = Workspace(load_settings())
    added = add_paths(ws, [str(deploy / "huge.png")], "medium-format")
    assert [r.status for r in added] == ["added"], added
    result = next(iter(check(ws, [str(deploy / "huge.png")])))
    assert result.verdict.value == "error" and result.error_code == "too_many_pixels"
