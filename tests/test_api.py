"""HTTP API on a real uvicorn (loopback, ephemeral port) with real workers and real photos."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageEnhance
from sqlalchemy import select

from monitor.config import load_settings
from monitor.daemon import Daemon
from monitor.errors import SignatureError
from monitor.outcome.signing import body_sha256, signed_headers
from monitor.services.gallery import add_paths
from monitor.services.workspace import Workspace
from monitor.store.models import Candidate, Violation
from tests.conftest import encode, skimage_photo

SECRET = "test-secret-Ω-" + "8d2f6c0b9e47a15f3c2d8e6b0a9f4c7e1b5d3a2f6e8c0b9d4a7f1e3c5b2d8a6f"
GALLERY = ("astronaut", "coffee", "chelsea", "rocket")


def write_config(root: Path, **server: object) -> Path:
    (root / "secret.txt").write_text(SECRET)
    lines = ["[clip]", 'pretrained = "laion2b_s34b_b79k"', "[server]",
             'webhook_secret_file = "secret.txt"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in server.items()]
    (root / "config.toml").write_text("\n".join(lines) + "\n")
    return root / "config.toml"


def start(root: Path, workers: int, *, extra_toml: str = "",
          **server: object) -> tuple[Daemon, httpx.Client]:
    cfg = write_config(root, **server)
    cfg.write_text(cfg.read_text() + extra_toml)
    ws = Workspace(load_settings(cfg))
    gdir = root / "gallery"
    if not gdir.exists():
        gdir.mkdir()
        for name in GALLERY:
            skimage_photo(name).save(gdir / f"{name}.png")
        add_paths(ws, [str(gdir)], "portfolio", {"owner": "me"})
    daemon = Daemon(ws, str(cfg), host="127.0.0.1", port=0, workers=workers, grace=5)
    daemon.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=30)
    return daemon, client


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, httpx.Client]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.delenv("MONITOR_CONFIG", raising=False)
    daemon, client = start(tmp_path_factory.mktemp("api"), workers=2, max_upload_bytes=3_000_000)
    yield daemon, client
    client.close()
    daemon.shutdown()
    mp.undo()


def send(client: httpx.Client, method: str, path: str, *, secret: str = SECRET,
         ts: float | None = None, sign: bool = True, tamper: bool = False,
         extra: dict[str, str] | None = None, **kw) -> httpx.Response:
    req = client.build_request(method, path, **kw)
    body = req.read()
    if sign:
        req.headers.update(signed_headers(secret, method, str(req.url), body, now=ts))
    if tamper:
        req = client.build_request(method, path, headers=dict(req.headers),
                                   content=body[:-1] + bytes([body[-1] ^ 1]))
    req.headers.update(extra or {})
    return client.send(req)


def edited_copy() -> bytes:
    """The astronaut resized, brightened and re-encoded: a typical re-upload."""
    im = skimage_photo("astronaut").resize((330, 330))
    return encode(ImageEnhance.Brightness(im).enhance(1.08), "JPEG", quality=70)


def wait_done(client: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = send(client, "GET", f"/v1/submissions/{job_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("done", "error"):
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"submission {job_id} not done in {timeout} s")


def test_signature_scheme_is_the_documented_one(env) -> None:
    _, client = env
    data = encode(skimage_photo("camera"), "PNG")
    ts, nonce = str(int(time.time())), "n" * 32
    canonical = "\n".join(["MONITOR-HMAC-SHA256-V2", "POST", "/v1/submissions", "b=2&c=x%20y",
                           "default", ts, nonce, hashlib.sha256(data).hexdigest()])
    assert body_sha256(data) == hashlib.sha256(data).hexdigest()
    mac = hmac.new(SECRET.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    r = client.post("/v1/submissions?c=x+y&b=2", content=data, headers={
        "Content-Type": "image/png", "X-Monitor-Key": "default", "X-Monitor-Timestamp": ts,
        "X-Monitor-Nonce": nonce, "X-Monitor-Signature": f"v2={mac}"})
    assert r.status_code == 202, r.text
    assert set(r.json()) >= {"id", "status"} and r.headers["location"].endswith(r.json()["id"])


@pytest.mark.parametrize("case", ["missing", "wrong-secret", "stale", "future", "tampered",
                                  "malformed"])
def test_bad_signatures_are_refused(env, case: str) -> None:
    _, client = env
    data = encode(skimage_photo("moon"), "PNG")
    kw: dict = {"content": data, "headers": {"Content-Type": "image/png"}}
    if case == "missing":
        r = send(client, "POST", "/v1/submissions", sign=False, **kw)
    elif case == "wrong-secret":
        r = send(client, "POST", "/v1/submissions", secret="nope", **kw)
    elif case == "stale":
        r = send(client, "POST", "/v1/submissions", ts=time.time() - 301, **kw)
    elif case == "future":
        r = send(client, "POST", "/v1/submissions", ts=time.time() + 400, **kw)
    elif case == "tampered":
        r = send(client, "POST", "/v1/submissions", tamper=True, **kw)
    else:
        r = send(client, "POST", "/v1/submissions", extra={"X-Monitor-Signature": "md5=00"}, **kw)
    assert r.status_code == 401, (case, r.text)
    # inside the window is fine
    assert send(client, "POST", "/v1/submissions", ts=time.time() - 290, **kw).status_code == 202


def test_get_signature_is_bound_to_its_target(env) -> None:
    _, client = env
    r = send(client, "GET", "/v1/violations?limit=5")
    assert r.status_code == 200
    replay = client.get("/v1/gallery", headers={k: v for k, v in r.request.headers.items()
                                                if k.lower().startswith("x-monitor")})
    assert replay.status_code == 401


def test_upload_is_checked_and_result_names_the_gallery_match(env, caplog) -> None:
    daemon, client = env
    caplog.set_level("INFO", logger="monitor.worker")
    data = edited_copy()
    r = send(client, "POST", "/v1/submissions", files={"file": ("copy.jpg", data, "image/jpeg")},
             data={"page_url": "https://pirate.example/p/1", "metadata": '{"ref": "A-1"}'})
    assert r.status_code == 202, r.text
    status = wait_done(client, r.json()["id"])
    assert status["status"] == "done" and status["metadata"]["ref"] == "A-1"
    res = status["result"]
    assert res["sha256"] == hashlib.sha256(data).hexdigest()
    assert res["verdict"] == "violation" and res["error"] is None
    top = res["matches"][0]
    assert top["gallery_path"].endswith("astronaut.png") and top["collection"] == "portfolio"
    with daemon.ws.session() as s:
        cand = s.get(Candidate, status["candidate_id"])
        assert cand.page_url == "https://pirate.example/p/1" and cand.status == "checked"
    logged = [r.getMessage() for r in caplog.records if r.name == "monitor.worker"]
    assert any(f"submission job {r.json()['id']}" in m and "violation" in m for m in logged), logged
    # the same bytes again (another key, raw body form): the same submission
    again = send(client, "POST", "/v1/submissions", content=data,
                 headers={"Content-Type": "image/jpeg"}, extra={"Idempotency-Key": "other"})
    assert again.status_code == 202 and again.json() == {
        "id": r.json()["id"], "status": "done", "duplicate": True}


def test_idempotency_key(env) -> None:
    _, client = env
    body = {"url": "http://127.0.0.1:9/none.jpg", "page_url": "https://x.example/"}
    a = send(client, "POST", "/v1/submissions", json=body, extra={"Idempotency-Key": "k-77"})
    b = send(client, "POST", "/v1/submissions", json=body, extra={"Idempotency-Key": "k-77"})
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] == b.json()["id"] and b.json()["duplicate"]
    other = send(client, "POST", "/v1/submissions", json={**body, "url": "http://127.0.0.1:9/o"},
                 extra={"Idempotency-Key": "k-77"})
    assert other.status_code == 409
    done = wait_done(client, a.json()["id"])
    assert done["result"]["verdict"] == "error", "private address refused, recorded as error"


def test_too_large_and_not_images(env) -> None:
    _, client = env
    big = b"\xff\xd8\xff" + b"\0" * 3_100_000
    r = send(client, "POST", "/v1/submissions", content=big, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413

    def chunks():  # no Content-Length: the server counts while reading
        for _ in range(40):
            yield b"\0" * 100_000

    signature = signed_headers(SECRET, "POST", "/v1/submissions", b"".join(chunks()))
    r = client.post("/v1/submissions", content=chunks(),
                    headers={"Content-Type": "image/jpeg", **signature})
    assert r.status_code == 413 and "content-length" not in r.request.headers
    for body in (b"<!doctype html><html>hi</html>", b"", b"\x89PNG\r\n\x1a\ngarbage",
                 b'<svg xmlns="http://www.w3.org/2000/svg"/>'):
        r = send(client, "POST", "/v1/submissions", files={"file": ("x.jpg", body, "image/jpeg")})
        assert r.status_code == 415, (body, r.text)


def test_queue_full_gets_429_with_retry_after(tmp_path: Path) -> None:
    daemon, client = start(tmp_path, workers=0, queue_max=2)
    try:
        codes = []
        for name in ("camera", "coins", "page"):
            r = send(client, "POST", "/v1/submissions",
                     content=encode(skimage_photo(name), "PNG"),
                     headers={"Content-Type": "image/png"})
            codes.append(r.status_code)
        assert codes == [202, 202, 429]
        assert int(r.headers["retry-after"]) > 0
        camera = encode(skimage_photo("camera"), "PNG")
        dup = send(client, "POST", "/v1/submissions", content=camera,
                   headers={"Content-Type": "image/png"})
        assert dup.status_code == 202 and dup.json()["duplicate"], "known work is never refused"
    finally:
        client.close()
        daemon.shutdown()


def test_search_records_nothing(env) -> None:
    daemon, client = env
    with daemon.ws.session() as s:
        before = len(s.execute(select(Candidate.id)).all())
    flipped = skimage_photo("coffee").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    r = send(client, "POST", "/v1/search", files={"file": ("q.jpg", encode(flipped), "image/jpeg")})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc) == {"path", "sha256", "verdict", "matches", "error"}
    assert doc["verdict"] == "violation"
    assert doc["matches"][0]["gallery_path"].endswith("coffee.png")
    r = send(client, "POST", "/v1/search", content=encode(skimage_photo("grass")),
             headers={"Content-Type": "image/jpeg"})
    assert r.json()["verdict"] == "clean" and r.json()["matches"] == []
    with daemon.ws.session() as s:
        assert len(s.execute(select(Candidate.id)).all()) == before


def test_gallery_crud(env) -> None:
    _, client = env
    listed = send(client, "GET", "/v1/gallery?collection=portfolio").json()
    assert listed["total"] == len(GALLERY) and listed["items"][0]["metadata"] == {"owner": "me"}
    clock = encode(skimage_photo("clock"), "PNG")
    r = send(client, "POST", "/v1/gallery", files=[("file", ("clock.png", clock, "image/png")),
                                                   ("file", ("bad.png", b"nope", "image/png"))],
             data={"collection": "extra", "metadata": '{"sku": "C-9"}'})
    assert r.status_code == 201, r.text
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["added", "error"]
    assert res[0]["warning"] is None  # a real photo: its pHash can match on its own
    new_id = res[0]["id"]
    hit = send(client, "POST", "/v1/search", content=clock, headers={"Content-Type": "image/png"})
    assert hit.json()["matches"][0]["gallery_id"] == str(new_id)
    again = send(client, "POST", "/v1/gallery", files={"file": ("clock.png", clock, "image/png")},
                 data={"collection": "extra"})
    assert again.json()["results"][0]["status"] == "exists"
    assert send(client, "DELETE", f"/v1/gallery/{new_id}").json() == {"removed": [new_id]}
    assert send(client, "DELETE", f"/v1/gallery/{new_id}").status_code == 404
    gone = send(client, "POST", "/v1/search", content=clock, headers={"Content-Type": "image/png"})
    assert gone.json()["matches"] == []
    assert send(client, "GET", "/v1/gallery", sign=False).status_code == 401


def test_violations_list_and_filters(env) -> None:
    daemon, client = env
    data = encode(skimage_photo("chelsea").resize((400, 300)), "JPEG", quality=80)
    r = send(client, "POST", "/v1/submissions", content=data,
             headers={"Content-Type": "image/jpeg"})
    wait_done(client, r.json()["id"])
    doc = send(client, "GET", "/v1/violations?collection=portfolio&status=open").json()
    assert doc["total"] >= 1
    item = next(i for i in doc["items"] if i["protected"]["path"].endswith("chelsea.png"))
    assert item["status"] == "open" and item["match"]["stage"] in ("hash", "local")
    assert send(client, "GET", "/v1/violations?collection=nothing").json()["total"] == 0
    assert send(client, "GET", "/v1/violations?since=2999-01-01").json()["total"] == 0
    assert send(client, "GET", "/v1/violations?limit=1").json()["items"].__len__() == 1
    assert send(client, "GET", "/v1/violations?since=yesterday").status_code == 422
    with daemon.ws.session() as s:
        assert len(s.execute(select(Violation.id)).all()) == doc["total"]

    vid = item["id"]
    r = send(client, "POST", f"/v1/violations/{vid}/status",
             json={"status": "licensed", "note": "invoice 42", "actor": "alice"})
    assert r.status_code == 200 and r.json()["status"] == "licensed"
    assert send(client, "POST", f"/v1/violations/{vid}/status",
                json={"status": "gone"}).status_code == 422
    assert send(client, "POST", "/v1/violations/999999/status",
                json={"status": "open"}).status_code == 404
    assert send(client, "POST", f"/v1/violations/{vid}/status", json={"status": "open"},
                sign=False).status_code == 401
    from monitor.services.review import history

    events = history(daemon.ws, vid)
    assert [(e.actor, e.from_status, e.to_status, e.note) for e in events] == [
        ("default", "open", "licensed", "invoice 42")]  # the key's name, not the body's actor


def test_healthz_and_metrics(env) -> None:
    _, client = env
    h = client.get("/healthz")
    assert h.status_code == 200
    doc = h.json()
    assert doc["database"]["ok"] and isinstance(doc["queue"]["depth"], int)
    stages = {s["name"]: s for s in doc["stages"]}
    assert stages["hash"]["available"]
    assert not stages["clip"]["available"] and stages["clip"]["reason"] and stages["clip"]["fix"]
    assert doc["status"] == "degraded" and doc["workers"]["alive"] == 2
    text = client.get("/metrics").text
    assert 'monitor_submissions_total{outcome="accepted"}' in text
    assert 'monitor_submissions_total{outcome="unauthorized"}' in text
    assert 'monitor_checks_total{verdict="violation"}' in text
    assert "monitor_check_seconds_bucket" in text
    assert 'route="/v1/submissions/{job_id}"' in text
    assert client.get("/docs").status_code == 200
    assert "/v1/submissions" in client.get("/openapi.json").json()["paths"]


def test_webhook_alert_delivered_signed_with_retry(tmp_path: Path) -> None:
    """The outbound webhook: a 500 first, then 200; the signature verifies."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from monitor.outcome.signing import verify_request
    from monitor.outcome.webhooks import deliver_due
    from monitor.store.models import Alert

    got: list[tuple[dict, bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(500 if len(got) == 1 else 204)
            self.end_headers()

        def log_message(self, *a) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text() + "[alerts]\nbackoff = 0.0\nwebhook_secret = \"hook-key\"\n"
                   f'webhook_url = "http://127.0.0.1:{hook.server_address[1]}/hook"\n'
                   "[local]\nenabled = false\n")
    ws = Workspace(load_settings(cfg))
    (tmp_path / "g").mkdir()
    skimage_photo("rocket").save(tmp_path / "g" / "rocket.png")
    add_paths(ws, [str(tmp_path / "g")], "portfolio")
    from monitor.services.check import CandidateInput, check_one

    copy = encode(skimage_photo("rocket").resize((300, 200)))
    assert check_one(ws, CandidateInput("https://pirate.example/r.jpg", data=copy)).verdict.value \
        == "violation"
    with httpx.Client(timeout=5) as c:
        assert deliver_due(ws, c) == 1
        assert deliver_due(ws, c) == 1
        assert deliver_due(ws, c) == 0
    hook.shutdown()
    headers, body = got[-1]
    url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
    assert verify_request("hook-key", headers, "POST", url, body).key_id == "default"
    with pytest.raises(SignatureError):  # bound to the webhook's path
        verify_request("hook-key", headers, "POST", url + "2", body)
    from monitor.outcome.signing import verify_v1  # v1 receivers: still served this release

    verify_v1("hook-key", headers["X-Monitor-Timestamp"], headers["X-Monitor-Signature"], body)
    doc = json.loads(body)
    assert doc["candidate"]["source"] == "https://pirate.example/r.jpg"
    assert doc["protected"]["path"].endswith("rocket.png") and doc["scores"]["stage"] == "hash"
    with ws.session() as s:
        alert = s.execute(select(Alert).where(Alert.kind == "webhook")).scalar_one()
    assert alert.status == "sent" and alert.attempts == 2 and alert.sent_at is not None
    assert headers["X-Monitor-Delivery"] == str(alert.id)




def test_gallery_upload_takes_files_larger_than_a_candidate(env) -> None:
    """Protected images are trusted: ``POST /v1/gallery`` accepts a file over the
    candidates' cap (``server.max_upload_bytes`` is 3 MB here), up to the gallery's own
    (``decode.gallery_max_bytes``); a candidate of the same bytes gets 413 (issue 20)."""
    _, client = env
    hubble = skimage_photo("hubble_deep_field")
    big = encode(hubble.resize((hubble.width * 3 // 2, hubble.height * 3 // 2)), "PNG",
                 compress_level=0)
    assert len(big) > 3_000_000
    r = send(client, "POST", "/v1/gallery", files={"file": ("hubble.png", big, "image/png")},
             data={"collection": "large"})
    assert r.status_code == 201, r.text
    assert r.json()["results"][0]["status"] == "added"
    too_big = send(client, "POST", "/v1/submissions", content=big,
                   headers={"Content-Type": "image/png"})
    assert too_big.status_code == 413
    gid = r.json()["results"][0]["id"]
    assert send(client, "DELETE", f"/v1/gallery/{gid}").status_code == 200
