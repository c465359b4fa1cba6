"""Load generator for ``monitor serve``: signed submissions fired concurrently on loopback.

Phase 1 (accept path): ``--n`` distinct images (real photos from
``skimage.data``, resized and re-encoded so every body differs) are POSTed to
``/v1/submissions`` all at once (one connection each, ``--concurrency`` at a
time, default all), signed with signature v2 (HMAC-SHA256 over method, path, key id,
timestamp, nonce and body SHA-256; key ``default``). Reports requests per second,
p50/p90/p99 latency (milliseconds, send to full answer) and the count of 202 / 429 / 5xx / other.
Nothing is retried, so a 429 counts as "told to retry". The bar: no 5xx.

Phase 2 (end to end): waits until ``/healthz`` shows an empty queue and
reports candidates checked per second through the workers, counted from the
first request to the empty queue.

By default a throw-away deployment is created (gallery of 6 photos, CLIP off
because weights cannot be downloaded here) and ``monitor serve`` is started in
a subprocess; ``--url`` and ``--secret`` aim at a running server instead::

    .venv/bin/python -m bench.api_load --n 1000 --workers 2
    .venv/bin/python -m bench.api_load --url http://127.0.0.1:8080 --secret "$SECRET" --n 500
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from monitor.outcome.signing import signed_headers

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "horse")


def bodies(n: int, side: int) -> list[bytes]:
    """``n`` distinct JPEG bodies (photos at slightly different sizes and qualities)."""
    import skimage.data

    base = [Image.fromarray(np.asarray(getattr(skimage.data, p)(), np.uint8)).convert("RGB")
            for p in PHOTOS]
    out = []
    for i in range(n):
        im = base[i % len(base)]
        w = side + (i // len(base)) % 97
        small = im.resize((w, max(8, w * im.height // im.width)))
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=70 + (i // (len(base) * 97)) % 25)
        out.append(buf.getvalue())
    assert len(set(out)) == n, "bodies must differ"
    return out


def spawn(workers: int, queue_max: int, local: bool) -> tuple[subprocess.Popen, str, str, Path]:
    """A temporary deployment with a gallery, served by ``monitor serve`` in a subprocess."""
    import skimage.data

    root = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    secret = secrets.token_hex(32)
    (root / "config.toml").write_text(
        f"[clip]\nenabled = false\n[local]\nenabled = {str(local).lower()}\n"
        f"[server]\nport = 0\nworkers = {workers}\nqueue_max = {queue_max}\n")
    (root / "gallery").mkdir()
    for p in PHOTOS[:6]:
        Image.fromarray(np.asarray(getattr(skimage.data, p)(), np.uint8)).convert("RGB").save(
            root / "gallery" / f"{p}.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MONITOR_SERVER__WEBHOOK_SECRET": secret}
    env.pop("MONITOR_CONFIG", None)
    cli = [sys.executable, "-m", "monitor"]
    subprocess.run(cli + ["gallery", "add", "gallery", "--collection", "bench"], cwd=root,
                   env=env, check=True, capture_output=True)
    proc = subprocess.Popen(cli + ["serve"], cwd=root, env=env, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stderr:
        if m := re.search(r"listening on (http://\S+)", line):
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1), secret, root
    raise SystemExit("monitor serve did not start")


async def post(host: str, port: int, path: str, body: bytes, headers: dict[str, str]
               ) -> int:
    """One HTTP/1.1 POST on a fresh connection (asyncio streams); returns the status code.

    A raw client keeps the generator cheap: httpx's async pool costs more CPU
    per request than the server under test on a 2-core machine.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                     + body)
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        await reader.read()  # headers and body until close
        return status
    finally:
        writer.close()


async def fire(url: str, secret: str, payloads: list[bytes], concurrency: int
               ) -> tuple[list[float], list[int], float]:
    """POST every payload; returns latencies (s), status codes (599: transport error), wall s."""
    target = httpx.URL(url)
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    codes: list[int] = []

    async def one(data: bytes) -> None:
        async with sem:
            headers = {"Content-Type": "image/jpeg",
                       **signed_headers(secret, "POST", "/v1/submissions", data)}
            t = time.perf_counter()
            try:
                codes.append(await post(target.host, target.port, "/v1/submissions", data,
                                        headers))
            except (OSError, ValueError, IndexError):
                codes.append(599)
            lat.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(one(d) for d in payloads))
    return lat, codes, time.perf_counter() - start


def drain(url: str, timeout: float) -> tuple[float, dict]:
    """Wait for an empty queue; returns (monotonic time, last /healthz document)."""
    deadline = time.monotonic() + timeout
    doc: dict = {}
    while time.monotonic() < deadline:
        doc = httpx.get(f"{url}/healthz", timeout=30).json()
        if doc["queue"]["depth"] == 0:
            break
        time.sleep(0.25)
    return time.monotonic(), doc


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``values``."""
    return float(np.quantile(np.asarray(values), q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="Submissions to fire.")
    ap.add_argument("--concurrency", type=int, default=0, help="In flight at once (0: all).")
    ap.add_argument("--side", type=int, default=320, help="Image width in pixels.")
    ap.add_argument("--url", default="", help="Running server; empty spawns one.")
    ap.add_argument("--secret", default="", help="Its webhook secret (with --url).")
    ap.add_argument("--workers", type=int, default=2, help="Worker threads (spawned server).")
    ap.add_argument("--queue-max", type=int, default=10_000, help="server.queue_max (spawned).")
    ap.add_argument("--local", action="store_true", help="Enable the local stage (spawned).")
    ap.add_argument("--drain-timeout", type=float, default=900.0, help="Seconds to wait.")
    args = ap.parse_args(argv)

    print("command:", shlex.join([sys.executable, "-m", "bench.api_load", *sys.argv[1:]]))
    proc = None
    url, secret = args.url, args.secret
    if not url:
        proc, url, secret, root = spawn(args.workers, args.queue_max, args.local)
        print(f"spawned monitor serve at {url} in {root} (workers={args.workers}, "
              f"queue_max={args.queue_max}, stages: hash{' + local' if args.local else ''})")
    payloads = bodies(args.n, args.side)
    size = statistics.mean(len(p) for p in payloads)
    concurrency = args.concurrency or args.n
    try:
        t0 = time.monotonic()
        lat, codes, wall = asyncio.run(fire(url, secret, payloads, concurrency))
        n202, n429 = codes.count(202), codes.count(429)
        n5xx = sum(c >= 500 for c in codes)
        other = len(codes) - n202 - n429 - n5xx
        print(f"accept path: {args.n} signed submissions ({size / 1024:.0f} KiB avg), "
              f"{concurrency} concurrent, {wall:.2f} s wall")
        print(f"  throughput {len(codes) / wall:.0f} req/s; latency p50 {pct(lat, .5) * 1e3:.0f} "
              f"ms, p90 {pct(lat, .9) * 1e3:.0f} ms, p99 {pct(lat, .99) * 1e3:.0f} ms")
        print(f"  202: {n202}  429: {n429}  5xx/transport: {n5xx}  other: {other}")
        end, doc = drain(url, args.drain_timeout)
        checked = n202
        print(f"end to end: {checked} candidates checked in {end - t0:.1f} s = "
              f"{checked / (end - t0):.1f} candidates/s (queue depth now {doc['queue']['depth']},"
              f" done {doc['queue']['done']}, error {doc['queue']['error']})")
        print("bar (no 5xx, all 202 or 429):", "PASS" if n5xx == 0 and other == 0 else "FAIL")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            print("serve exit code after SIGTERM:", proc.wait(60))
    return 0 if n5xx == 0 and other == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
