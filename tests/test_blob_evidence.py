"""Evidence files in the blob store: a check that flags a candidate archives its bytes in the
deployment's bucket (a real S3 server, moto's), never under ``data/evidence``; reports,
exports, takedown drafts and the dashboard read them (and the stored gallery copies) back
from the bucket, on the machine that wrote them and on another one with its own data
folder; purging deletes them from the bucket. A blob store that is a folder other than the
data folder is honoured the same way."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from monitor.api import create_app, dashboard
from monitor.config import load_settings
from monitor.daemon.metrics import Metrics
from monitor.daemon.state import AppState
from monitor.outcome.exports import to_csv, to_json
from monitor.outcome.report import write_report
from monitor.outcome.stored import location
from monitor.outcome.takedown import render_takedown
from monitor.services.violations import get_item, list_items
from monitor.services.workspace import Workspace
from monitor.store import Store
from monitor.store.models import utcnow
from tests.test_blobs import _keys, bucket, s3_endpoint  # noqa: F401 (fixtures)
from tests.violations_data import make_ws, populate

PREFIX = "prod"
THUMB = 'src="data:image/jpeg;base64,'


def _use_bucket(monkeypatch: pytest.MonkeyPatch, endpoint: str, name: str, **more: str) -> None:
    for key, value in [("BLOB_URL", f"s3://{name}/{PREFIX}"), ("S3_ENDPOINT_URL", endpoint),
                       ("S3_REGION", "us-east-1"), ("S3_ACCESS_KEY_ID", "testing"),
                       ("S3_SECRET_ACCESS_KEY", "testing-secret"), *more.items()]:
        monkeypatch.setenv(f"MONITOR_STORAGE__{key}", value)


@pytest.fixture
def s3ws(deploy: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str,  # noqa: F811
         bucket: str, photos, others) -> Workspace:  # noqa: F811
    """Three violations and one clean candidate, blobs in ``s3://bucket/prod``."""
    _use_bucket(monkeypatch, s3_endpoint, bucket)
    ws = make_ws(deploy, photos)
    populate(ws, photos, others)
    return ws


def _client(ws: Store) -> TestClient:
    app = create_app(AppState(ws, "", Metrics()))
    if not any(getattr(r, "path", None) == "/violations" for r in app.routes):
        app.include_router(dashboard.router)
    return TestClient(app, "http://127.0.0.1:8080", client=("127.0.0.1", 40000),
                      follow_redirects=False)


def test_a_check_archives_its_evidence_in_the_bucket(s3ws: Workspace, s3_endpoint: str,  # noqa: F811
                                                      bucket: str) -> None:  # noqa: F811
    items = list_items(s3ws)
    assert len(items) == 3 and all(i.evidence_path for i in items)
    keys = _keys(s3_endpoint, bucket)
    for item in items:
        assert f"{PREFIX}/{item.evidence_path}" in keys
        data = s3ws.blobs.get(item.evidence_path)
        assert hashlib.sha256(data).hexdigest() == item.candidate_sha256
    assert sum(k.startswith(f"{PREFIX}/evidence/") for k in keys) == 3  # the clean one: none
    assert not (s3ws.data_dir / "evidence").exists()
    assert not (s3ws.data_dir / "gallery").exists()


def test_report_reads_evidence_and_gallery_copies_from_the_bucket(
        s3ws: Workspace, deploy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    html = write_report(s3ws).read_text()
    assert html.count(THUMB) == 6  # protected and found, for each of the three
    assert "missing" not in html and "unreadable" not in html and "altered" not in html
    for item in list_items(s3ws):  # no server.base_url: the object's URL
        assert f'href="{location(s3ws, item.evidence_path)}"' in html

    # Another machine: its own data folder, the same database and bucket; a plain Store
    # (no Workspace) opens the blob store from its settings. Evidence links go to the
    # dashboard under server.base_url.
    monkeypatch.setenv("MONITOR_STORAGE__DATABASE_URL", s3ws.settings.database_url)
    monkeypatch.setenv("MONITOR_STORAGE__DATA_DIR", str(deploy / "machine2"))
    monkeypatch.setenv("MONITOR_SERVER__BASE_URL", "https://monitor.example.org/")
    other = Store(load_settings())
    html = write_report(other).read_text()
    assert html.count(THUMB) == 6 and "missing" not in html
    for item in list_items(other):
        assert (f'href="https://monitor.example.org/violations/{item.violation_id}/evidence"'
                in html)
    assert not (deploy / "machine2" / "evidence").exists()


def test_a_lost_object_is_a_placeholder(s3ws: Workspace) -> None:
    item = list_items(s3ws)[0]
    s3ws.blobs.delete(item.evidence_path)
    html = write_report(s3ws).read_text()
    assert f"evidence file missing: {item.evidence_path}" in html
    assert html.count(THUMB) == 5


def test_exports_and_takedown_name_the_object(s3ws: Workspace, bucket: str) -> None:  # noqa: F811
    items = list_items(s3ws)
    rows = json.loads(to_json(s3ws, items, generated=utcnow(), filters={}))["items"]
    for row in rows:
        assert row["evidence_file"] == f"s3://{bucket}/{PREFIX}/{row['evidence_path']}"
    assert rows[0]["evidence_file"] in to_csv(s3ws, items)
    notice = render_takedown(s3ws, items[0].violation_id)
    assert "missing" not in notice
    assert location(s3ws, "evidence/../x") == "evidence/../x"  # not a key: shown as it is


def test_dashboard_serves_evidence_and_thumbnails_from_the_bucket(s3ws: Workspace) -> None:
    client = _client(s3ws)
    item = list_items(s3ws)[0]
    ev = client.get(f"/violations/{item.violation_id}/evidence")
    assert ev.status_code == 200, ev.text
    assert ev.headers["content-type"] == "application/octet-stream"
    assert ev.headers["content-disposition"].startswith("attachment; filename=")
    assert ev.headers["x-content-type-options"] == "nosniff"
    assert ev.content == s3ws.blobs.get(item.evidence_path)
    page = client.get(f"/violations/{item.violation_id}")
    assert page.status_code == 200 and page.text.count(THUMB) == 2
    assert client.get("/violations").text.count(THUMB) == 6

    s3ws.blobs.delete(item.evidence_path)
    gone = client.get(f"/violations/{item.violation_id}/evidence")
    assert gone.status_code == 404 and "no archived evidence" in gone.text
    assert "evidence file missing" in client.get(f"/violations/{item.violation_id}").text


def test_purge_deletes_evidence_from_the_bucket(s3ws: Workspace, s3_endpoint: str,  # noqa: F811
                                                 bucket: str) -> None:  # noqa: F811
    from monitor.services.gallery import purge, remove
    from monitor.services.review import set_status

    item = next(i for i in list_items(s3ws) if i.protected_path.endswith("astronaut.png"))
    set_status(s3ws, item.violation_id, "confirmed", "alice")
    remove(s3ws, [str(item.protected_id)], "alice")  # reviewed: archived, evidence kept
    assert f"{PREFIX}/{item.evidence_path}" in _keys(s3_endpoint, bucket)
    done = purge(s3ws, [str(item.protected_id)])
    assert done.evidence == [item.evidence_path]
    keys = _keys(s3_endpoint, bucket)
    assert f"{PREFIX}/{item.evidence_path}" not in keys
    assert f"{PREFIX}/{item.stored_path}" not in keys
    assert sum(k.startswith(f"{PREFIX}/evidence/") for k in keys) == 2


def test_a_blob_folder_other_than_the_data_folder(deploy: Path, monkeypatch: pytest.MonkeyPatch,
                                                  photos, others) -> None:
    """``storage.blob_url`` a folder: evidence is archived there (keys as paths), read
    back by the report (links relative to the report) and the dashboard."""
    monkeypatch.setenv("MONITOR_STORAGE__BLOB_URL", "shared")
    ws = make_ws(deploy, photos)
    populate(ws, photos, others)
    item = get_item(ws, list_items(ws)[0].violation_id)
    assert (deploy / "shared" / item.evidence_path).is_file()
    assert not (ws.data_dir / "evidence").exists()
    assert location(ws, item.evidence_path) == str(deploy / "shared" / item.evidence_path)
    path = write_report(ws)
    html = path.read_text()
    assert html.count(THUMB) == 6 and "missing" not in html
    href = html.split('class="evidence-link" href="', 1)[1].split('"', 1)[0]
    assert (path.parent / href).resolve().is_file()
    ev = _client(ws).get(f"/violations/{item.violation_id}/evidence")
    assert ev.status_code == 200
    assert ev.content == (deploy / "shared" / item.evidence_path).read_bytes()
