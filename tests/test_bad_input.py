"""Bad input answers 4xx, never 500: huge ids, odd upload names, allow-domain on an upload.

A real daemon on loopback (signatures off, allowed there) with a real gallery; the CLI
through Typer's runner on a deployment of real violations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import ImageEnhance
from typer.testing import CliRunner

from monitor.cli import app
from monitor.daemon import Daemon
from monitor.services.gallery import list_gallery
from tests.conftest import OTHERS, encode, skimage_photo
from tests.loopback import serve, wait_done
from tests.violations_data import make_ws, populate

HUGE = "99999999999999999999"  # > 2**63: SQLite cannot hold it (OverflowError before)
TOP = str(2**63 - 1)  # the largest id SQLite holds: a well-formed id that names nothing


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, httpx.Client]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.delenv("MONITOR_CONFIG", raising=False)
    daemon, client = serve(tmp_path_factory.mktemp("badinput"))
    yield daemon, client
    client.close()
    daemon.shutdown()
    mp.undo()


def _upload_violation(client: httpx.Client, name: str, scale: float,
                      page_url: str | None = None) -> dict:
    """Submit a re-encoded copy of gallery photo ``name`` as an upload; its violation."""
    im = skimage_photo(name)
    im = ImageEnhance.Brightness(im.resize((int(im.width * scale), int(im.height * scale))))
    data = encode(im.enhance(1.05), "JPEG", quality=75)
    r = client.post("/v1/submissions", files={"file": (f"{name}.jpg", data, "image/jpeg")},
                    data={"page_url": page_url} if page_url else {})
    assert r.status_code == 202, r.text
    job = wait_done(client, r.json()["id"])
    assert job["status"] == "done", job
    items = client.get("/v1/violations").json()["items"]
    return next(v for v in items if v["candidate"]["id"] == job["candidate_id"])


@pytest.mark.parametrize(("method", "path", "want"), [
    ("POST", f"/v1/violations/{HUGE}/status", 422),
    ("POST", f"/v1/violations/{TOP}/status", 404),
    ("POST", "/v1/violations/0/status", 422),
    ("GET", f"/v1/violations?offset={HUGE}", 422),
    ("GET", f"/v1/violations?offset={TOP}", 200),
    ("GET", f"/v1/gallery?offset={HUGE}", 422),
    ("DELETE", f"/v1/gallery/{HUGE}", 422),
    ("DELETE", f"/v1/gallery/{TOP}", 404),
    ("GET", f"/violations/{HUGE}", 422),
    ("GET", f"/violations/{TOP}", 404),
    ("GET", f"/violations/{HUGE}/evidence", 422),
    ("GET", f"/violations?page={HUGE}", 422),
])
def test_huge_ids_and_offsets_answer_4xx(env, method: str, path: str, want: int) -> None:
    _, client = env
    kw = {"json": {"status": "open"}} if method == "POST" else {}
    r = client.request(method, path, **kw)
    assert r.status_code == want, (path, r.status_code, r.text)


def test_huge_ids_are_clean_cli_errors(deploy: Path, photos, others) -> None:
    ws = make_ws(deploy, photos)
    populate(ws, photos, others)
    runner = CliRunner()
    for args in (["violations", "show", HUGE], ["violations", "set-status", HUGE, "open"],
                 ["violations", "takedown", HUGE], ["violations", "show", "0"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
        assert "Invalid value" in res.output, res.output
    for ref in (HUGE, TOP, "%%%%%%%%", "________", "²³"):
        res = runner.invoke(app, ["gallery", "remove", ref])
        assert res.exit_code == 2 and isinstance(res.exception, SystemExit), (ref, res.output)
        assert "no protected image" in res.output
    assert len(list_gallery(ws)) == 3  # a LIKE wildcard as a "sha256 prefix" removed nothing


def test_odd_upload_names_are_recorded_not_used(env) -> None:
    _, client = env
    names = ["..", ".", "x" * 300 + ".png", "../../etc/passwd", "dir\\evil.png", "Ω photo.png"]
    files = [("file", (name, encode(skimage_photo(other), "PNG"), "image/png"))
             for name, other in zip(names, OTHERS, strict=False)]
    r = client.post("/v1/gallery", files=files, data={"collection": "odd"})
    assert r.status_code == 201, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["added"] * len(names), results
    labels = [x["file"] for x in results]
    assert labels == ["..", ".", "x" * 255, "passwd", "evil.png", "Ω photo.png"]
    listed = client.get("/v1/gallery", params={"collection": "odd"}).json()["items"]
    assert sorted(i["path"] for i in listed) == sorted(f"upload:{x}" for x in labels)


def test_allow_domain_on_an_upload_is_422_with_a_reason(env) -> None:
    _, client = env
    plain = _upload_violation(client, "coffee", 0.6)
    assert plain["candidate"]["source"].startswith("upload:")
    broken = _upload_violation(client, "chelsea", 0.55, page_url="http://[::1")
    for v in (plain, broken):
        r = client.post(f"/v1/violations/{v['id']}/status",
                        json={"status": "licensed", "allow_domain": True})
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "rule" and "no web host" in r.json()["detail"]
        items = client.get("/v1/violations").json()["items"]
        assert next(i for i in items if i["id"] == v["id"])["status"] == "open"
    ok = client.post(f"/v1/violations/{plain['id']}/status", json={"status": "licensed"})
    assert ok.status_code == 200 and ok.json()["status"] == "licensed"


@pytest.mark.parametrize(("body", "headers", "field"), [
    ({"url": "https://example.org/" + "a" * 2100 + ".jpg"}, {}, "url"),
    ({"url": "https://example.org/x.jpg", "page_url": "https://example.org/" + "p" * 6000},
     {}, "page_url"),
    ({"url": "https://example.org/y.jpg"}, {"Idempotency-Key": "k" * 300}, "Idempotency-Key"),
])
def test_over_long_fields_are_422_not_500(env, body: dict, headers: dict, field: str) -> None:
    """URLs past 2,048 characters and keys past 255 are refused before anything is stored
    (PostgreSQL could not index them: a 500 there before)."""
    _, client = env
    r = client.post("/v1/submissions", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert field.lower() in r.text.lower() and "at most" in r.json()["detail"]
