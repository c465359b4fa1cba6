"""Inputs: folder expansion and URL fetching against a real loopback HTTP server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor.errors import FetchError, InputTooLarge
from monitor.intake.inputs import expand, fetch, read_file
from tests.conftest import encode


@pytest.fixture(scope="module")
def server(photos):
    jpeg = encode(photos["coffee"])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            routes = {
                "/a.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg),
                "/hop": (302, {"Location": "/a.jpg"}, b""),
                "/private": (302, {"Location": "http://169.254.169.254/latest"}, b""),
                "/loop": (302, {"Location": "/loop"}, b""),
                "/big": (200, {"Content-Type": "image/jpeg"}, b"\xff" * 300_000),
            }
            status, headers, body = routes.get(self.path, (404, {}, b"nope"))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}", jpeg
    srv.shutdown()


def test_fetch_and_redirect(server) -> None:
    base, jpeg = server
    body, status, headers = fetch(f"{base}/hop", 10_000_000, allow_private=True)
    assert body == jpeg and status == 200 and headers["content-type"] == "image/jpeg"


def test_loopback_refused_by_default(server) -> None:
    with pytest.raises(FetchError, match="loopback address 127.0.0.1"):
        fetch(f"{server[0]}/a.jpg", 10_000_000)


def test_redirect_to_metadata_address_refused(server) -> None:
    # allow_private permits loopback, never link-local or cloud metadata addresses
    with pytest.raises(FetchError, match="169.254.169.254") as info:
        fetch(f"{server[0]}/private", 10_000_000, allow_private=True)
    assert info.value.code == "address_refused"


def test_byte_cap_redirect_loop_and_404(server) -> None:
    base, _ = server
    with pytest.raises(InputTooLarge):
        fetch(f"{base}/big", 100_000, allow_private=True)
    with pytest.raises(FetchError, match="redirects"):
        fetch(f"{base}/loop", 100_000, allow_private=True)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(f"{base}/missing", 100_000, allow_private=True)
    with pytest.raises(FetchError, match="only http"):
        fetch("file:///etc/passwd", 100)


def test_expand_and_read(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for rel in ("d/b.jpg", "d/sub/a.png", "d/.hidden.jpg"):
        (tmp_path / rel).write_bytes(b"x")
    found = [i.location for i in expand([str(tmp_path / "d"), "https://x.example/i.jpg"])]
    assert found == [str(tmp_path / "d/b.jpg"), str(tmp_path / "d/sub/a.png"),
                     "https://x.example/i.jpg"]
    with pytest.raises(FetchError, match="no such file"):
        read_file(str(tmp_path / "missing.jpg"), 10)
    with pytest.raises(InputTooLarge):
        read_file(str(tmp_path / "d/b.jpg"), 0)
