"""Request signing v2 on a real uvicorn (loopback): binding, replay cache, scopes, headers
checked before the body, body timeout, `monitor sign`, v1 behind its setting."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from monitor.cli import app as cli
from monitor.daemon import Daemon
from monitor.errors import SignatureError
from monitor.outcome.signing import (
    body_sha256,
    canonical_query,
    canonical_request,
    signed_headers,
    signed_headers_v1,
)
from monitor.store.models import Nonce
from tests.conftest import encode, skimage_photo
from tests.test_api import SECRET, send, wait_done
from tests.test_api import start as api_start

CRAWLER = "crawler-secret-" + "5e1a9c3f7b2d4e6a8c0f1b3d5e7a9c2f4b6d8e0a1c3e5f7b9d2a4c6e8f0b1d3a"
REVIEWER = "reviewer-secret-" + "a7c2e4f6b8d0a1c3e5f7b9d2a4c6e8f0b1d3a5e7c9f2b4d6e8a0c1f3b5d7e9a2"
KEYS = """
[[server.keys]]
id = "crawler"
name = "crawler bot"
scopes = ["submit", "read"]
secret_file = "crawler.txt"

[[server.keys]]
id = "rev-2"
name = "Alice Reviewer"
scopes = ["review", "read"]
secret_env = "MONITOR_TEST_REVIEWER_SECRET"
"""


def start(root: Path, **server: object) -> tuple[Daemon, httpx.Client]:
    """:func:`tests.test_api.start` with one worker and the crawler and reviewer keys."""
    (root / "crawler.txt").write_text(CRAWLER + "\n")
    return api_start(root, 1, extra_toml=KEYS, **server)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, httpx.Client]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("MONITOR_TEST_REVIEWER_SECRET", REVIEWER)
    mp.delenv("MONITOR_CONFIG", raising=False)
    daemon, client = start(tmp_path_factory.mktemp("signing"), body_timeout=1.5,
                           max_concurrent_per_client=64,  # many stalled uploads at once
                           accept_v1_signatures=True)  # v1 is off by default
    yield daemon, client
    client.close()
    daemon.shutdown()
    mp.undo()


@pytest.fixture(scope="module")
def violation_ids(env) -> list[int]:
    """Two open violations (copies of two gallery photos submitted through the API)."""
    _, client = env
    for name in ("chelsea", "coffee"):
        data = encode(skimage_photo(name).resize((400, 300)), "JPEG", quality=80)
        r = send(client, "POST", "/v1/submissions", content=data,
                 headers={"Content-Type": "image/jpeg"})
        wait_done(client, r.json()["id"])
    items = send(client, "GET", "/v1/violations?status=open").json()["items"]
    assert len(items) >= 2
    return [i["id"] for i in items]


def signed(client: httpx.Client, method: str, path: str, secret: str = SECRET,
           key_id: str = "default", **kw) -> httpx.Request:
    """A request built and signed v2, not sent."""
    req = client.build_request(method, path, **kw)
    body = req.read()
    req.headers.update(signed_headers(secret, method, str(req.url), body, key_id=key_id))
    return req


def retarget(client: httpx.Client, req: httpx.Request, path: str) -> httpx.Request:
    """The captured headers and body of ``req`` sent to ``path`` instead."""
    return client.build_request(req.method, path, headers=dict(req.headers), content=req.read())


def status_of(client: httpx.Client, vid: int) -> str:
    items = send(client, "GET", "/v1/violations?limit=1000").json()["items"]
    return next(i["status"] for i in items if i["id"] == vid)


# -- the scheme ------------------------------------------------------------------------
def test_canonical_query_and_worked_example() -> None:
    assert canonical_query("b=2&a=x+y&a=%41&c&d=%e2%82%ac/") == "a=A&a=x%20y&b=2&c=&d=%E2%82%AC%2F"
    assert canonical_query("") == ""
    # the README's worked examples (values checked with `openssl dgst -sha256 -hmac`)
    body = b'{"status": "confirmed", "note": "same crop as 2024 print"}'
    assert body_sha256(body) == \
        "85ba1d35eb7625115486fb143fd38bf8a58f3836ac95da731c0a0d3f355339ea"
    assert canonical_request("post", "/v1/violations/7/status", "", "default", "1767225600",
                             "0f1e2d3c4b5a69788796a5b4c3d2e1f0", body_sha256(body)) == (
        "MONITOR-HMAC-SHA256-V2\nPOST\n/v1/violations/7/status\n\ndefault\n1767225600\n"
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0\n"
        "85ba1d35eb7625115486fb143fd38bf8a58f3836ac95da731c0a0d3f355339ea")
    h = signed_headers("s3cr3t-example-only-0123456789abcdef", "POST",
                       "http://127.0.0.1:8080/v1/violations/7/status", body,
                       now=1767225600, nonce="0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    assert h == {"X-Monitor-Key": "default", "X-Monitor-Timestamp": "1767225600",
                 "X-Monitor-Nonce": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                 "X-Monitor-Signature": "v2=74a224e59dd97faf708ad5ba993ef3a7"
                                        "736188d7d355fe1eae422041bfce7af1"}
    h = signed_headers("crawler-secret-example-0123456789", "GET",
                       "http://127.0.0.1:8080/v1/violations?status=open&limit=20"
                       "&collection=Summer%20shoot", key_id="crawler", now=1767225600,
                       nonce="q3Jx9VbL2mZ0pTfA7sWcYd")
    assert h["X-Monitor-Signature"] == \
        "v2=f97e9f944737f7f0e692a420e191dded752963caef4d9c6ed50d831ba42b64a3"
    with pytest.raises(SignatureError):
        signed_headers("x", "GET", "/v1/gallery", nonce="short")


# -- binding and replay ----------------------------------------------------------------
def test_cross_endpoint_replay_is_refused(env, violation_ids) -> None:
    _, client = env
    first, second = violation_ids[:2]
    captured = signed(client, "POST", f"/v1/violations/{first}/status",
                      json={"status": "dismissed"})
    r = client.send(retarget(client, captured, f"/v1/violations/{second}/status"))
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("HMAC-SHA256")
    assert status_of(client, second) == "open"
    assert client.send(captured).status_code == 200, "the captured request itself was valid"
    assert status_of(client, first) == "dismissed"

    photo = encode(skimage_photo("coffee"), "JPEG")
    search = signed(client, "POST", "/v1/search",
                    files={"file": ("q.jpg", photo, "image/jpeg")},
                    data={"collection": "portfolio"})
    for path in ("/v1/gallery", "/v1/submissions", "/v1/search?collection=portfolio"):
        assert client.send(retarget(client, search, path)).status_code == 401, path
    assert client.send(search).status_code == 200


def test_same_request_replayed_later_is_refused(env) -> None:
    daemon, client = env
    req = signed(client, "GET", "/v1/violations?limit=3&status=open")
    assert client.send(req).status_code == 200
    time.sleep(3)
    again = client.send(retarget(client, req, "/v1/violations?limit=3&status=open"))
    assert again.status_code == 401 and "nonce" in again.json()["detail"]
    key, nonce = req.headers["X-Monitor-Key"], req.headers["X-Monitor-Nonce"]
    with daemon.ws.session() as s:
        assert s.execute(select(Nonce).where(Nonce.key_id == key, Nonce.nonce == nonce)
                         ).scalar_one()


def test_replay_cache_survives_a_restart(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MONITOR_TEST_REVIEWER_SECRET", REVIEWER)
    daemon, client = start(tmp_path)
    try:
        req = signed(client, "GET", "/v1/gallery")
        assert client.send(req).status_code == 200
    finally:
        client.close()
        daemon.shutdown()
    daemon, client = start(tmp_path)
    try:
        assert client.send(retarget(client, req, "/v1/gallery")).status_code == 401
    finally:
        client.close()
        daemon.shutdown()


# -- keys and scopes -------------------------------------------------------------------
def test_scopes_decide_per_route(env, violation_ids) -> None:
    _, client = env
    vid = violation_ids[-1]
    crawl = {"secret": CRAWLER, "key_id": "crawler"}
    r = client.send(signed(client, "POST", f"/v1/violations/{vid}/status",
                           json={"status": "dismissed"}, **crawl))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert status_of(client, vid) == "open"
    photo = encode(skimage_photo("page"), "PNG")
    assert client.send(signed(client, "POST", "/v1/submissions", content=photo,
                              headers={"Content-Type": "image/png"}, **crawl)).status_code == 202
    assert client.send(signed(client, "GET", "/v1/violations", **crawl)).status_code == 200
    for method, path in (("POST", "/v1/search"), ("POST", "/v1/gallery"),
                         ("DELETE", "/v1/gallery/1")):
        r = client.send(signed(client, method, path, content=photo if method == "POST" else b"",
                               **crawl))
        assert r.status_code == 403, (method, path, r.text)
    # another key's secret under the crawler's id: refused
    assert client.send(signed(client, "GET", "/v1/violations", key_id="crawler")
                       ).status_code == 401
    assert client.send(signed(client, "GET", "/v1/violations", key_id="nobody")
                       ).status_code == 401
    # the reviewer's key may review; the actor recorded is the key's name
    r = client.send(signed(client, "POST", f"/v1/violations/{vid}/status", secret=REVIEWER,
                           key_id="rev-2", json={"status": "confirmed", "actor": "mallory"}))
    assert r.status_code == 200, r.text
    from monitor.services.review import history

    assert history(env[0].ws, vid)[-1].actor == "Alice Reviewer"


# -- headers before the body -----------------------------------------------------------
ZEROS = bytes(8_000_000)
"""Body bytes the stalled clients try to send (one buffer shared by every thread)."""


def _stalled(port: int, head: str, send_bytes: int) -> tuple[socket.socket, bytes]:
    """Send ``head`` and up to ``send_bytes`` of body, stop, and read what comes back."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(2)
    try:
        s.sendall(head.encode())
        s.sendall(memoryview(ZEROS)[:send_bytes])
    except OSError:  # the server answered and stopped reading: expected
        pass
    s.settimeout(5)
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return s, got


def _head(path: str, length: int, headers: dict[str, str] | None = None) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: image/png",
             f"Content-Length: {length}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def test_unsigned_uploads_are_refused_before_the_body_is_read(env) -> None:
    daemon, _ = env
    proc = psutil.Process()
    before = proc.memory_info().rss
    size = 20_000_000
    stale = signed_headers(SECRET, "POST", "/v1/search", b"", now=time.time() - 1000)
    crawler = signed_headers(CRAWLER, "POST", "/v1/search", b"", key_id="crawler")
    cases = [("/v1/submissions", {}, 401), ("/v1/search", {}, 401),
             ("/v1/gallery", {}, 401), ("/v1/search", stale, 401),
             ("/v1/search", crawler, 403)] * 4
    answers: list[tuple[int, bytes, float]] = [None] * len(cases)  # type: ignore[list-item]
    socks = []

    def one(i: int) -> None:
        path, headers, _ = cases[i]
        t = time.monotonic()
        s, got = _stalled(daemon.bound_port, _head(path, size, headers), len(ZEROS))
        answers[i] = (i, got, time.monotonic() - t)
        socks.append(s)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        for i, got, took in answers:
            want = cases[i][2]
            assert got.startswith(f"HTTP/1.1 {want} ".encode()), (cases[i][:2], got[:80])
            assert took < 5
        # 20 clients pushing 8 MB each: read, that would be 160 MB in the server
        assert proc.memory_info().rss - before < 64_000_000
    finally:
        for s in socks:
            s.close()


def test_gate_refuses_unsigned_json_routes_unread(tmp_path: Path, monkeypatch) -> None:
    """Routes whose JSON body FastAPI parses before dependencies (review status) need the
    ASGI gate to refuse without reading."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MONITOR_TEST_REVIEWER_SECRET", REVIEWER)
    daemon, client = start(tmp_path)  # the app installs SignatureGate itself
    try:
        s, got = _stalled(daemon.bound_port, _head("/v1/violations/1/status", 20_000_000),
                          1_000_000)
        s.close()
        assert got.startswith(b"HTTP/1.1 401 "), got[:80]
        assert send(client, "GET", "/v1/gallery").status_code == 200
        assert client.get("/healthz").status_code == 200
    finally:
        client.close()
        daemon.shutdown()


def test_slow_body_gets_408(env) -> None:
    daemon, _ = env
    body = encode(skimage_photo("camera"), "PNG")
    headers = signed_headers(SECRET, "POST", "/v1/search", body)
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", daemon.bound_port))
    s.settimeout(10)
    s.sendall(_head("/v1/search", len(body), headers).encode() + body[: len(body) // 2])
    got = s.recv(65536)
    s.close()
    assert got.startswith(b"HTTP/1.1 408 "), got[:80]
    assert 1.4 < time.monotonic() - t < 5


# -- the reference signer --------------------------------------------------------------
def test_monitor_sign_headers_are_accepted(env, tmp_path: Path) -> None:
    daemon, client = env
    cfg = daemon.config_path
    base = f"http://127.0.0.1:{daemon.bound_port}"
    photo = tmp_path / "q.png"
    photo.write_bytes(encode(skimage_photo("coffee"), "PNG"))

    def sign(*args: str) -> dict[str, str]:
        res = CliRunner().invoke(cli, ["--config", cfg, "sign", *args])
        assert res.exit_code == 0, res.output
        lines = res.stdout.strip().splitlines()
        assert [ln.split(": ", 1)[0] for ln in lines] == [
            "X-Monitor-Key", "X-Monitor-Timestamp", "X-Monitor-Nonce", "X-Monitor-Signature"]
        return dict(ln.split(": ", 1) for ln in lines)

    h = sign("POST", f"{base}/v1/search?collection=portfolio", "--data", f"@{photo}")
    r = httpx.post(f"{base}/v1/search?collection=portfolio", content=photo.read_bytes(),
                   headers={"Content-Type": "image/png", **h})
    assert r.status_code == 200 and r.json()["verdict"] == "violation", r.text
    text = '{"url": "http://127.0.0.1:9/x.jpg"}'
    h = sign("post", "/v1/submissions", "--data", text, "--key-id", "crawler")
    assert h["X-Monitor-Key"] == "crawler"
    r = client.post("/v1/submissions", content=text.encode(),
                    headers={"Content-Type": "application/json", **h})
    assert r.status_code == 202, r.text
    h = sign("GET", f"{base}/v1/violations?status=open&limit=2")
    assert client.get("/v1/violations?limit=2&status=open", headers=h).status_code == 200
    res = CliRunner().invoke(cli, ["--config", cfg, "sign", "GET", "/v1/gallery",
                                   "--key-id", "nope"])
    assert res.exit_code == 2 and "nope" in res.output


# -- v1, deprecated --------------------------------------------------------------------
def test_v1_accepted_with_the_setting_and_warned(env, caplog) -> None:
    _, client = env
    data = encode(skimage_photo("moon"), "PNG")
    with caplog.at_level(logging.WARNING, logger="monitor.api"):
        r = client.post("/v1/submissions", content=data,
                        headers={"Content-Type": "image/png", **signed_headers_v1(SECRET, data)})
    assert r.status_code == 202, r.text
    assert any("v1 request signature" in m for m in caplog.messages)


def test_v1_refused_by_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MONITOR_TEST_REVIEWER_SECRET", REVIEWER)
    daemon, client = start(tmp_path)
    try:
        data = encode(skimage_photo("moon"), "PNG")
        r = client.post("/v1/submissions", content=data,
                        headers={"Content-Type": "image/png", **signed_headers_v1(SECRET, data)})
        assert r.status_code == 401 and "v1" in r.json()["detail"]
        assert send(client, "POST", "/v1/submissions", content=data,
                    headers={"Content-Type": "image/png"}).status_code == 202
    finally:
        client.close()
        daemon.shutdown()
