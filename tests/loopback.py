"""A real ``monitor serve`` daemon on 127.0.0.1 with signatures off (allowed on loopback).

Used by the tests that probe the HTTP surface as a client would (odd input, huge ids,
schemathesis): signing is not what they test, so the daemon is configured with
``server.require_signature = false`` instead of every request being signed.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx

from monitor.config import load_settings
from monitor.daemon import Daemon
from monitor.services.gallery import add_paths
from monitor.services.workspace import Workspace
from tests.conftest import skimage_photo

GALLERY = ("astronaut", "coffee", "chelsea")
"""scikit-image photos put in the ``portfolio`` collection before the daemon starts."""


def serve(root: Path, *, workers: int = 1, local: bool = False,
          **server: object) -> tuple[Daemon, httpx.Client]:
    """Start a daemon for the deployment folder ``root`` (created config, gallery of
    :data:`GALLERY`, CLIP off) on an ephemeral loopback port; returns it and a client.
    ``server`` adds ``[server]`` settings (TOML scalars)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "secret.txt").write_text(secrets.token_hex(32))
    lines = ["[clip]", "enabled = false", "[local]", f"enabled = {str(local).lower()}",
             "[server]", 'webhook_secret_file = "secret.txt"', "require_signature = false"]
    lines += [f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else
              f"{k} = {str(v).lower() if isinstance(v, bool) else v}"
              for k, v in server.items()]
    cfg = root / "config.toml"
    cfg.write_text("\n".join(lines) + "\n")
    ws = Workspace(load_settings(cfg))
    gallery = root / "gallery"
    gallery.mkdir(exist_ok=True)
    for name in GALLERY:
        skimage_photo(name).save(gallery / f"{name}.png")
    add_paths(ws, [str(gallery)], "portfolio", {"owner": "me"})
    daemon = Daemon(ws, str(cfg), host="127.0.0.1", port=0, workers=workers, grace=5)
    daemon.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{daemon.bound_port}", timeout=60)
    return daemon, client


def wait_done(client: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    """The submission ``job_id`` once ``done`` or ``error`` (polls; fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/v1/submissions/{job_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("done", "error"):
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"submission {job_id} not done in {timeout} s")
