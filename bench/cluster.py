"""A monitor deployment of separate processes on this machine: api, workers, scheduler.

Used by ``tests/test_roles.py`` and :mod:`bench.roles`. Each role is a real ``python -m
monitor`` subprocess of one deployment folder sharing PostgreSQL (a fresh schema of
``--database``) and a broker: a private ``redis-server`` on a free loopback port
(:class:`RedisServer`, restartable without touching the machine's Redis) or any broker
URL given. Submissions are signed like any client's (signature v2).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from monitor.outcome.signing import signed_headers

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
"""The PostgreSQL database schemas are made in (trust auth on this machine and in CI)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgSchema:
    """A fresh PostgreSQL schema; :attr:`url` points ``search_path`` at it."""

    def __init__(self, base: str = PG_URL) -> None:
        import psycopg

        self.name = f"roles_{uuid.uuid4().hex[:12]}"
        self._conninfo = base.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(self._conninfo, autocommit=True) as c:
            c.execute(f'CREATE SCHEMA "{self.name}"')
        self.url = f"{base}?options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        """Drop the schema and everything in it."""
        import psycopg

        with psycopg.connect(self._conninfo, autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


class RedisServer:
    """A private ``redis-server`` (no persistence) on a free loopback port."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start it (empty: nothing is kept across restarts) and wait until it answers."""
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        """Stop it (its queued messages are lost, as in a broker crash)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        """Kill and start again on the same port."""
        self.stop()
        self.start()


class Role:
    """One ``python -m monitor ARGS`` process in ``root``; its stderr lines collected."""

    def __init__(self, root: Path, args: list[str], ready: str, timeout: float = 120) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("MONITOR_CONFIG", None)
        self.args = args
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor", *args], cwd=root,
                                     env=env, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.port: int | None = None
        self.metrics_port: int | None = None
        seen = threading.Event()

        def pump() -> None:
            for line in self.proc.stderr:
                self.lines.append(line)
                if m := re.search(r"listening on http://[\d.]+:(\d+)", line):
                    self.port = int(m.group(1))
                if m := re.search(r"metrics at http://[\d.]+:(\d+)/metrics", line):
                    self.metrics_port = int(m.group(1))
                if re.search(ready, line):
                    seen.set()
            seen.set()

        threading.Thread(target=pump, daemon=True).start()
        if not seen.wait(timeout) or self.proc.poll() is not None:
            self.proc.kill()
            raise RuntimeError(f"monitor {' '.join(args)} did not start:\n"
                               + "".join(self.lines[-30:]))

    def kill(self) -> None:
        """SIGKILL, and wait."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)

    def completed(self) -> list[str]:
        """Job ids whose check this process logged as finished."""
        return [m.group(1) for line in list(self.lines)
                if (m := re.search(r"job ([0-9a-f]{32}) from .*: candidate", line))]


CONFIG = """
[storage]
database_url = "{db}"
[clip]
enabled = false
[local]
enabled = false
[server]
host = "127.0.0.1"
port = 0
workers = {threads}
queue_max = 100000
webhook_secret_file = "secret.txt"
[queue]
broker_url = "{broker}"
lease_seconds = {lease}
sweep_every = 1
sweep_after = {sweep_after}
gallery_sync = 0.5
scheduler_ttl = 6
"""


class Cluster:
    """A deployment in ``root`` on database ``db`` and broker ``broker`` whose roles
    are started one by one (:meth:`api`, :meth:`worker`, :meth:`scheduler`)."""

    def __init__(self, root: Path, db: str, broker: str, threads: int = 2,
                 lease: float = 10.0, sweep_after: float = 5.0) -> None:
        self.root, self.secret = root, secrets.token_hex(32)
        root.mkdir(parents=True, exist_ok=True)
        (root / "secret.txt").write_text(self.secret)
        (root / "config.toml").write_text(CONFIG.format(
            db=db, broker=broker, threads=threads, lease=lease, sweep_after=sweep_after))
        self.roles: list[Role] = []
        self.url = ""
        self.client = httpx.Client(timeout=60)

    def add_gallery(self, images: dict[str, Image.Image], collection: str = "portfolio"
                    ) -> None:
        """Add ``images`` (name → picture) with ``monitor gallery add`` before the roles."""
        folder = self.root / "gallery-in"
        folder.mkdir(exist_ok=True)
        for name, im in images.items():
            im.save(folder / f"{name}.png")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        subprocess.run([sys.executable, "-m", "monitor", "gallery", "add", str(folder),
                        "--collection", collection], cwd=self.root, env=env, check=True,
                       capture_output=True)

    def api(self) -> Role:
        """Start ``monitor serve --role api``; sets :attr:`url`."""
        role = self._start(["serve", "--role", "api"], r"role api started")
        self.url = f"http://127.0.0.1:{role.port}"
        return role

    def worker(self, *extra: str) -> Role:
        """Start one ``monitor worker`` (``extra``: more options); a worker started with
        ``--metrics-port`` has its metrics port in :attr:`Role.metrics_port`."""
        return self._start(["worker", *extra], r"role worker started")

    def scheduler(self) -> Role:
        """Start one ``monitor scheduler``."""
        return self._start(["scheduler"], r"role scheduler started")

    def _start(self, args: list[str], ready: str) -> Role:
        role = Role(self.root, args, ready)
        self.roles.append(role)
        return role

    def send(self, method: str, path: str, **kw) -> httpx.Response:
        """A signed request to the api."""
        req = self.client.build_request(method, f"{self.url}{path}", **kw)
        body = req.read()
        req.headers.update(signed_headers(self.secret, method, str(req.url), body))
        return self.client.send(req)

    def submit(self, data: bytes) -> httpx.Response:
        """POST ``data`` (JPEG) as a signed submission; retries 429 after Retry-After."""
        for _ in range(50):
            r = self.send("POST", "/v1/submissions", content=data,
                          headers={"Content-Type": "image/jpeg"})
            if r.status_code != 429:
                return r
            time.sleep(float(r.headers.get("retry-after", 1)))
        return r

    def status(self, job_id: str) -> dict:
        """The submission's status document."""
        r = self.send("GET", f"/v1/submissions/{job_id}")
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        """SIGTERM every role still running (SIGKILL those that do not stop)."""
        for role in self.roles:
            try:
                role.stop(30)
            except subprocess.TimeoutExpired:
                role.kill()
        self.client.close()


def variants(photos: list[Image.Image], n: int, seed: int = 0, min_crop: float = 0.9
             ) -> list[bytes]:
    """``n`` distinct JPEGs made from ``photos``: random crops (``min_crop``-100 % per
    side), sizes (200-420 px wide) and qualities (55-90)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = photos[i % len(photos)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(min_crop, 1.0)), int(h * rng.uniform(min_crop, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        side = int(rng.integers(200, 421))
        crop = im.crop((x, y, x + cw, y + ch))
        crop = crop.resize((side, max(1, side * ch // cw)))
        buf = io.BytesIO()
        crop.save(buf, "JPEG", quality=int(rng.integers(55, 91)))
        out.append(buf.getvalue())
    return out
