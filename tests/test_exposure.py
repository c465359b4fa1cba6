"""``monitor serve`` refuses unsigned routes beyond loopback, warns about plain HTTP there,
and serves HTTPS itself with --ssl-certfile/--ssl-keyfile (a real server on loopback)."""

from __future__ import annotations

import logging
import secrets
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from monitor.config import load_settings
from monitor.daemon import Daemon
from monitor.daemon.exposure import Tls, exposure_warnings, is_loopback
from monitor.errors import ConfigError
from monitor.services.workspace import Workspace


def _ws(root: Path, **server: object) -> tuple[Workspace, Path]:
    lines = ["[clip]", "enabled = false", "[server]"]
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}"
              for k, v in server.items()]
    cfg = root / "config.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return Workspace(load_settings(cfg)), cfg


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False),
                                           ("::", False), ("192.0.2.7", False),
                                           ("monitor.example", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_unsigned_routes_refused_beyond_loopback(tmp_path: Path) -> None:
    ws, cfg = _ws(tmp_path, require_signature=False)
    daemon = Daemon(ws, str(cfg), host="0.0.0.0", port=0, workers=1, grace=1)
    with pytest.raises(ConfigError, match="require_signature = false"):
        daemon.start()  # refused before anything binds or starts
    assert daemon.bound_port is None
    daemon.shutdown()


def test_unsigned_routes_on_loopback_start_with_a_warning(tmp_path: Path, caplog) -> None:
    ws, cfg = _ws(tmp_path, require_signature=False)
    daemon = Daemon(ws, str(cfg), host="127.0.0.1", port=0, workers=1, grace=1)
    with caplog.at_level(logging.WARNING, logger="monitor.daemon"):
        daemon.start()
    try:
        r = httpx.get(f"http://127.0.0.1:{daemon.bound_port}/v1/violations", timeout=10)
        assert r.status_code == 200
        assert any("signatures are off" in m for m in caplog.messages)
    finally:
        daemon.shutdown()


def test_plain_http_beyond_loopback_is_warned(tmp_path: Path) -> None:
    ws, _ = _ws(tmp_path, webhook_secret=secrets.token_hex(32))
    warned = exposure_warnings(ws.settings, "0.0.0.0", None)
    assert any("plain HTTP" in w and "--ssl-certfile" in w for w in warned)
    assert not exposure_warnings(ws.settings, "0.0.0.0", Tls("c.pem", "k.pem"))
    assert not exposure_warnings(ws.settings, "127.0.0.1", None)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_serves_https_with_a_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ws, cfg = _ws(tmp_path, webhook_secret=secrets.token_hex(32))
    daemon = Daemon(ws, str(cfg), host="127.0.0.1", port=0, workers=1, grace=1,
                    tls=Tls(str(cert), str(key)))
    daemon.start()
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        r = httpx.get(f"https://127.0.0.1:{daemon.bound_port}/healthz", verify=trust,
                      timeout=10)
        assert r.status_code == 200 and r.json()["database"]["ok"]
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not spoken on that port
            plain = f"http://127.0.0.1:{daemon.bound_port}/healthz"
            httpx.get(plain, timeout=5).raise_for_status()
    finally:
        daemon.shutdown()
