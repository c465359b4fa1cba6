"""Operator dashboard and HTML report in a real headless browser (Debian's Chromium, Playwright).

One deployment of real violations (scikit-image photos through the real pipeline, the
local stage on so one copy carries a homography quadrilateral) is served by a real
uvicorn on loopback. Chromium loads the list, opens a violation and changes its
status through the form; the database must then hold the change and its audit
event. The report written by :func:`monitor.outcome.report.write_report` is opened in the
same browser and the screenshot's pixels must show both images and the magenta
outline of the matched region. Set ``DASHBOARD_SCREENSHOTS=<folder>`` to keep the
screenshots.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlmodel import select
from starlette.testclient import TestClient

from monitor.api import create_app, dashboard
from monitor.daemon.metrics import Metrics
from monitor.daemon.state import AppState
from monitor.outcome.items import SEVERITY_RANK, get_item, query_items
from monitor.outcome.report import MARK_COLOUR, write_report
from monitor.services.workspace import Workspace
from monitor.store.models import Candidate, Violation, ViolationEvent
from tests.violations_data import copy_of, make_ws, populate, record

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
if shutil.which(CHROMIUM) is None:
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", exc_type=ImportError,
                               reason="playwright is not installed (pip install playwright)")

# The astronaut shrunk to PASTE_SIDE px and pasted at PASTE_AT into a CANVAS-sized meme.
CANVAS, PASTE_SIDE, PASTE_AT = (900, 700), 420, (240, 140)
NOTE = "Checked with the owner: the licence ran out in March."


@dataclass
class Site:
    """The deployment under test and where it is served."""

    ws: Workspace
    base: str
    meme_id: int
    astro_id: int


def _violation_of(ws: Workspace, url: str) -> int:
    with ws.session() as s:
        c = s.exec(select(Candidate).where(Candidate.source == url)).one()
        return s.exec(select(Violation).where(Violation.candidate_id == c.id)).one().id


def _meme(photos) -> bytes:
    canvas = Image.new("RGB", CANVAS, (40, 90, 40))
    canvas.paste(photos["astronaut"].resize((PASTE_SIDE, PASTE_SIDE)), PASTE_AT)
    return copy_of(canvas, 1.0, 1.0)


def _app(ws: Workspace):
    """The app as ``monitor serve`` builds it, with the dashboard mounted if not wired yet."""
    app = create_app(AppState(ws, "", Metrics()))
    if not any(getattr(r, "path", None) == "/violations" for r in app.routes):
        app.include_router(dashboard.router)
    return app


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, photos, others) -> Iterator[Site]:
    """Four real violations served by uvicorn on an ephemeral loopback port."""
    import uvicorn

    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.delenv("MONITOR_CONFIG", raising=False)
    root = tmp_path_factory.mktemp("dash")
    mp.chdir(root)
    ws = make_ws(root, photos, local=True)
    populate(ws, photos, others)
    meme = record(ws, "https://meme.example/m.jpg", _meme(photos),
                  page="https://meme.example/funny.html")
    assert meme.verdict.value == "violation", meme
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(_app(ws), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield Site(ws, f"http://127.0.0.1:{sock.getsockname()[1]}",
               _violation_of(ws, "https://meme.example/m.jpg"),
               _violation_of(ws, "https://pirate.example/img/astro.jpg"))
    server.should_exit = True
    thread.join(10)
    sock.close()
    mp.undo()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's headless Chromium driven by Playwright."""
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                  device_scale_factor=1)
    yield context.new_page()
    context.close()


def _keep(page, name: str) -> bytes:
    """A full-page screenshot (PNG bytes), also saved under $DASHBOARD_SCREENSHOTS if set."""
    png = page.screenshot(full_page=True)
    if folder := os.environ.get("DASHBOARD_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(png)
    return png


def _loaded(page, selector: str) -> int:
    """How many images matching ``selector`` the browser decoded (natural width > 0)."""
    return page.eval_on_selector_all(selector, "els => els.filter(e => e.complete && "
                                                "e.naturalWidth > 0).length")


# -- (a) review in the browser -------------------------------------------------------

def test_review_a_violation_in_chromium(site: Site, page) -> None:
    page.goto(site.base + "/")
    assert page.url == site.base + "/violations"
    rows = page.locator("tr.violation-row")
    assert rows.count() == 4
    assert page.locator('#counts .count[data-status="open"]').inner_text() == "4"
    assert _loaded(page, "tr.violation-row img.thumb") == 8  # both thumbnails per row
    _keep(page, "dashboard-list.png")

    page.locator(f"#row-{site.astro_id} a.open").click()
    page.wait_for_url(f"{site.base}/violations/{site.astro_id}")
    assert _loaded(page, "img.thumb") == 2
    facts = page.locator("dl.facts").inner_text()
    assert "https://pirate.example/img/astro.jpg" in facts and "nginx/1.25" in facts
    assert "pHash Hamming distance" in page.locator("ul.evidence").inner_text()
    assert page.locator("#status").text_content() == "open"

    page.check('input[name="status"][value="confirmed"]')
    page.fill('textarea[name="note"]', NOTE)
    page.click('form.review button[type="submit"]')
    page.wait_for_url(f"{site.base}/violations/{site.astro_id}?saved=1")
    assert page.locator("#status").text_content() == "confirmed"
    trail = page.locator("tr.event").inner_text()
    assert "dashboard" in trail and "open → confirmed" in trail and NOTE in trail
    _keep(page, "dashboard-detail.png")

    with site.ws.session() as s:
        v = s.get(Violation, site.astro_id)
        events = s.exec(select(ViolationEvent)
                        .where(ViolationEvent.violation_id == site.astro_id)).all()
    assert v.status == "confirmed" and v.note == NOTE
    assert [(e.actor, e.from_status, e.to_status, e.note) for e in events] == \
        [("dashboard", "open", "confirmed", NOTE)]


def test_list_filters_and_counts(site: Site) -> None:
    with site.ws.session() as s:
        severities = [i.severity for i in query_items(s)]
    severity, unused = severities[0], next(k for k in SEVERITY_RANK if k not in severities)
    with httpx.Client(base_url=site.base, timeout=10) as client:
        r = client.get("/violations", params={"collection": "portfolio", "severity": severity})
        assert r.status_code == 200
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
        assert r.text.count('class="violation-row"') == severities.count(severity)
        assert client.get("/violations", params={"collection": "nope"}).text \
            .count('class="violation-row"') == 0
        r = client.get("/violations", params={"severity": unused})
        assert r.status_code == 200 and 'class="violation-row"' not in r.text
        r = client.get(f"/violations/{site.meme_id}")
        assert r.status_code == 200 and "https://meme.example/funny.html" in r.text
        assert client.get("/violations/999999").status_code == 404
        ev = client.get(f"/violations/{site.meme_id}/evidence")
        assert ev.status_code == 200 and ev.headers["content-type"] == "application/octet-stream"
        assert ev.content[:3] == b"\xff\xd8\xff"


def test_status_form_refuses_cross_site_posts(site: Site) -> None:
    own = {"Origin": site.base}
    with httpx.Client(base_url=site.base, timeout=10) as client:
        html = client.get(f"/violations/{site.meme_id}").text
        token = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        url = f"/violations/{site.meme_id}/status"
        form = {"status": "dismissed", "note": "not ours", "csrf": token}
        assert client.post(url, data=form).status_code == 403  # no Origin, no Referer
        assert client.post(url, data=form, headers={"Origin": "https://evil.example"}) \
            .status_code == 403
        assert client.post(url, data={**form, "csrf": "guess"}, headers=own).status_code == 403
        bad = client.post(url, data={**form, "status": "gone"}, headers=own)
        assert bad.status_code == 400 and "unknown status" in bad.text
        with site.ws.session() as s:
            assert s.get(Violation, site.meme_id).status == "open"
        ok = client.post(url, data=form, headers={"Referer": site.base + url})
        assert ok.status_code == 303 and ok.headers["location"].endswith("?saved=1")
        with site.ws.session() as s:
            assert s.get(Violation, site.meme_id).status == "dismissed"
        # back to open, so the other tests see the deployment as built
        reopen = {**form, "status": "open", "note": "reopened"}
        assert client.post(url, data=reopen, headers=own).status_code == 303


def test_only_loopback_without_a_token(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(site.ws)
    remote = TestClient(app, client=("203.0.113.7", 40000), follow_redirects=False)
    assert remote.get("/violations").status_code == 403
    local = TestClient(app, "http://127.0.0.1:8080", client=("127.0.0.1", 40000),
                       follow_redirects=False)
    assert local.get("/violations").status_code == 200
    assert local.get("/violations", headers={"Host": "localhost:8080"}).status_code == 200
    assert local.get("/violations", headers={"Host": "rebound.example"}).status_code == 403
    assert local.get("/violations", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 403
    monkeypatch.setattr(dashboard, "configured_token", lambda settings: "s3cret")
    assert local.get("/violations").status_code == 403  # a token is then required of everyone
    assert remote.get("/violations", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    r = remote.get("/violations?status=open&token=s3cret")
    assert r.status_code == 303 and r.headers["location"] == "/violations?status=open"
    assert "HttpOnly" in r.headers["set-cookie"] and "s3cret" not in r.headers["set-cookie"]
    assert remote.get("/violations").status_code == 200  # the cookie now carries the token


# -- (b) issue 4's bar: the report renders with both images and the region ----------

def _mark_mask(rgb: np.ndarray, tol: float = 70.0) -> np.ndarray:
    return np.linalg.norm(rgb.astype(float) - np.array(MARK_COLOUR, float), axis=-1) < tol


def _crop(shot: np.ndarray, box: dict) -> np.ndarray:
    x, y = round(box["x"]), round(box["y"])
    return shot[y:y + round(box["height"]), x:x + round(box["width"])]


def test_report_renders_images_and_region_in_chromium(site: Site, page, photos,
                                                      tmp_path: Path) -> None:
    path = write_report(site.ws, out=tmp_path / "report.html")
    page.goto(path.as_uri())
    article = page.locator(f"#violation-{site.meme_id}")
    article.scroll_into_view_if_needed()
    assert _loaded(page, "img.thumb") == 8
    boxes = {k: article.locator(f'img[data-kind="{k}"]').bounding_box()
             for k in ("protected", "found")}
    shot = np.asarray(Image.open(io.BytesIO(_keep(page, "report.png"))).convert("RGB"))
    scroll = page.evaluate("[window.scrollX, window.scrollY]")
    for box in boxes.values():  # bounding boxes are viewport-relative; the shot is full-page
        box["x"] += scroll[0]
        box["y"] += scroll[1]

    # the protected image is on screen: it looks like the astronaut
    protected = _crop(shot, boxes["protected"]).astype(float)
    h, w = protected.shape[:2]
    astro = np.asarray(photos["astronaut"].resize((w, h)), float)
    assert np.abs(protected - astro).mean() < 20

    # the found image is on screen: the meme, apart from the drawn outline
    found = _crop(shot, boxes["found"])
    fh, fw = found.shape[:2]
    meme = np.asarray(Image.open(io.BytesIO(_meme(photos))).convert("RGB").resize((fw, fh)),
                      float)
    mask = _mark_mask(found)
    assert np.abs(found.astype(float) - meme)[~mask].mean() < 20

    # the outline: magenta along the recorded quadrilateral's edges, none inside it
    with site.ws.session() as s:
        item = get_item(s, site.meme_id)
    assert item.quad, "the local stage recorded the homography quadrilateral"
    quad = np.array(item.quad) * (fw / CANVAS[0])
    expected = np.array([[0, 0], [1, 0], [1, 1], [0, 1]]) * PASTE_SIDE + PASTE_AT
    assert np.abs(np.array(item.quad) - expected).max() < 25, item.quad
    assert mask.sum() > 300
    for a, b in zip(quad, np.roll(quad, -1, axis=0), strict=True):
        for t in (0.25, 0.5, 0.75):
            x, y = (a + (b - a) * t).round().astype(int)
            window = mask[max(0, y - 4):y + 5, max(0, x - 4):x + 5]
            assert window.any(), f"no outline near ({x}, {y})"
    cx, cy = quad.mean(axis=0).round().astype(int)
    half = int(0.3 * np.abs(quad[2] - quad[0]).min())
    assert not mask[cy - half:cy + half, cx - half:cx + half].any(), "outline inside the quad"
    assert not mask[:int(quad[:, 1].min()) - 6].any(), "outline above the quad"


def test_dead_letters_are_shown(site: Site) -> None:
    """A job whose attempts are spent (the dead-letter state) is counted and listed."""
    from monitor.store import queue

    job = queue.enqueue(site.ws.db, "submission", url="https://dead.example/x.jpg").job
    for _ in range(queue.MAX_ATTEMPTS):
        leased = queue.lease(site.ws.db, "test", 30)
        assert leased.id == job.id
        queue.fail(site.ws.db, leased, "FetchError: 404 from dead.example", backoff=0)
    assert queue.get(site.ws.db, job.id).status == "error"
    with httpx.Client(base_url=site.base, timeout=10) as client:
        text = client.get("/violations").text
    assert 'data-count="1"' in text and job.id in text and "404 from dead.example" in text
