"""Replay issue 19's findings 1-5 against a real ``monitor serve`` on loopback.

    python -m bench.replay_findings            # ~1-2 min; prints one row per attack

Starts ``monitor serve`` in a subprocess on 127.0.0.1 (a temporary deployment: four
scikit-image photos protected, a random 32-byte secret, CLIP off), then tries what an
attacker on the same network did before this release: replays of signed requests to
other endpoints and again, unsigned slow uploads, near-bomb decodes, oversized ids,
odd file names, allow-domain on an upload, removal of a reviewed image, invented HTTP
methods. Each row gives the answer or the measured server memory (RSS of the serve
process, psutil) and whether it is what the release promises (a 4xx, or bounded
memory). Exits 1 when any row fails. Traffic goes to loopback only, bounded in count.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

from monitor.outcome.signing import signed_headers

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
ROWS: list[tuple[str, str, str, bool]] = []


def row(finding: str, attack: str, seen: str, ok: bool) -> None:
    """Record and print one result."""
    ROWS.append((finding, attack, seen, ok))
    print(f"| {finding} | {attack} | {seen} | {'ok' if ok else 'FAIL'} |", flush=True)


def photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(np.asarray(getattr(skimage.data, name)(), np.uint8)).convert("RGB")


def encode(im: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def spawn(root: Path, secret: str) -> tuple[subprocess.Popen, str]:
    """``monitor serve`` in ``root`` (gallery added first); returns the process and URL."""
    (root / "config.toml").write_text("[clip]\nenabled = false\n[server]\nport = 0\n"
                                      "workers = 1\n[decode]\nmemory_budget_mb = 512\n")
    (root / "gallery").mkdir()
    for name in PHOTOS:
        photo(name).save(root / "gallery" / f"{name}.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MONITOR_SERVER__WEBHOOK_SECRET": secret}
    env.pop("MONITOR_CONFIG", None)
    cli = [sys.executable, "-m", "monitor"]
    subprocess.run(cli + ["gallery", "add", "gallery", "--collection", "p"], cwd=root, env=env,
                   check=True, capture_output=True)
    proc = subprocess.Popen(cli + ["serve"], cwd=root, env=env, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stderr:
        if m := re.search(r"listening on (https?://\S+)", line):
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1)
    raise SystemExit("monitor serve did not start")


class Client:
    """Signs and sends requests; keeps what was sent so it can be replayed."""

    def __init__(self, base: str, secret: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=60)
        self.secret = secret

    def signed(self, method: str, path: str, **kw) -> httpx.Request:
        req = self.http.build_request(method, path, **kw)
        body = req.read()
        req.headers.update(signed_headers(self.secret, method, str(req.url), body))
        return req

    def replay(self, req: httpx.Request, method: str, path: str) -> httpx.Response:
        """Send ``req``'s headers and body unchanged to another method and path."""
        headers = {k: v for k, v in req.headers.items() if k.lower() != "host"}
        return self.http.request(method, path, headers=headers, content=req.read())


def first_violation(c: Client) -> int:
    """Submit a mirrored copy of a protected photo, wait, return its violation id."""
    data = encode(photo("astronaut").transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    r = c.http.send(c.signed("POST", "/v1/submissions", content=data,
                             headers={"Content-Type": "image/jpeg"}))
    job = r.json()["id"]
    for _ in range(240):
        path = f"/v1/submissions/{job}"
        if c.http.send(c.signed("GET", path)).json()["status"] in ("done", "error"):
            break
        time.sleep(0.5)
    items = c.http.send(c.signed("GET", "/v1/violations")).json()["items"]
    return items[0]["id"]


def findings_1(c: Client, vid: int) -> None:
    """Signatures bind the request: other endpoint, other resource, same request again."""
    body = json.dumps({"status": "dismissed", "actor": "mallory"}).encode()
    req = c.signed("POST", f"/v1/violations/{vid}/status", content=body,
                   headers={"Content-Type": "application/json"})
    first = c.http.send(req)
    row("1", f"review violation {vid}, actor field 'mallory'", str(first.status_code),
        first.status_code == 200)
    r = c.replay(req, "POST", f"/v1/violations/{vid + 1}/status")
    row("1", "same signed review replayed to another violation", str(r.status_code),
        r.status_code == 401)
    r = c.replay(req, "POST", f"/v1/violations/{vid}/status")
    row("1", "same signed review replayed at once", str(r.status_code), r.status_code == 401)
    search = c.signed("POST", "/v1/search", files={"file": ("q.jpg", encode(photo("coffee")),
                                                            "image/jpeg")})
    for path in ("/v1/gallery", "/v1/submissions"):
        r = c.replay(search, "POST", path)
        row("1", f"signed /v1/search replayed to {path}", str(r.status_code),
            r.status_code == 401)


def stalled_upload(host: str, port: int, size: int, stall: float) -> tuple[int, float]:
    """Send headers of an unsigned ``size``-byte upload, a little of it, then stall;
    returns (status answered or 0, seconds until the answer)."""
    t0 = time.monotonic()
    with socket.create_connection((host, port), timeout=stall + 5) as s:
        s.sendall((f"POST /v1/submissions HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg"
                   f"\r\nContent-Length: {size}\r\n\r\n").encode() + b"\xff\xd8\xff" * 1000)
        try:
            answer = s.recv(64)
        except TimeoutError:
            return 0, time.monotonic() - t0
    m = re.match(rb"HTTP/1\.1 (\d+)", answer)
    return (int(m.group(1)) if m else 0), time.monotonic() - t0


def findings_2(c: Client, base: str, proc: subprocess.Popen) -> None:
    """Memory before authentication, and concurrent near-bomb decodes."""
    host, port = re.match(r"https?://([^:/]+):(\d+)", base).groups()
    server = psutil.Process(proc.pid)
    before = server.memory_info().rss
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda _: stalled_upload(host, int(port), 23 << 20, 10.0),
                                range(40)))
    grown = (server.memory_info().rss - before) / 2**20
    refused = sum(1 for status, _ in answers if 400 <= status < 500)
    slowest = max(t for _, t in answers)
    row("2", "40 unsigned 23 MiB uploads that stall",
        f"{refused}/40 answered 4xx, slowest {slowest:.1f} s, RSS +{grown:.0f} MiB",
        refused == 40 and grown < 100)
    big = encode(photo("chelsea").resize((8900, 8900)), "PNG")
    before = server.memory_info().rss
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: c.http.send(c.signed(
            "POST", "/v1/search", content=big, headers={"Content-Type": "image/png"})
        ).status_code, range(4)))
    peak = _peak_mib(proc.pid) - before / 2**20
    row("2", "4 concurrent searches of an 8900x8900 PNG (budget 512 MiB)",
        f"{codes}, peak RSS +{peak:.0f} MiB", all(x == 200 for x in codes) and peak < 1024)


def _peak_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def bomb_png(side: int) -> bytes:
    """A valid PNG of 1x1 pixel whose header is rewritten to claim ``side`` x ``side``."""
    import struct
    import zlib

    data = encode(Image.new("RGB", (1, 1)), "PNG")
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (data[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + data[33:])


def findings_3(c: Client) -> None:
    """Bad input answers 4xx, never 500."""
    bomb = bomb_png(30000)
    for path in ("/v1/submissions", "/v1/search"):
        r = c.http.send(c.signed("POST", path, content=bomb,
                                 headers={"Content-Type": "image/png"}))
        row("3", f"PNG header claiming 30000x30000 to {path}", str(r.status_code),
            400 <= r.status_code < 500)
    for path in ("/v1/violations/99999999999999999999", "/v1/violations?offset=9223372036854775808",
                 "/v1/submissions/99999999999999999999"):
        method = "GET"
        r = c.http.send(c.signed(method, path))
        row("3", f"GET {path[:45]}", str(r.status_code), 400 <= r.status_code < 500)
    for name in ("..", ".", "x" * 300 + ".jpg"):
        files = {"file": (name, encode(photo("rocket")), "image/jpeg")}
        r = c.http.send(c.signed("POST", "/v1/gallery", files=files, data={"collection": "p"}))
        row("3", f"gallery upload named {name[:12]!r}", str(r.status_code),
            r.status_code < 500)


def findings_3_4(c: Client) -> None:
    """Allow-domain on an uploaded candidate; removing a reviewed protected image."""
    items = c.http.send(c.signed("GET", "/v1/violations")).json()["items"]
    upload = next(i for i in items if i["candidate"]["source"].startswith("upload:"))
    body = json.dumps({"status": "licensed", "allow_domain": True}).encode()
    r = c.http.send(c.signed("POST", f"/v1/violations/{upload['id']}/status", content=body,
                             headers={"Content-Type": "application/json"}))
    row("3", "licensed + allow_domain on an uploaded candidate", str(r.status_code),
        r.status_code == 422)
    gid = upload["protected"]["id"]
    r = c.http.send(c.signed("DELETE", f"/v1/gallery/{gid}"))
    kept = c.http.send(c.signed("GET", "/v1/violations")).json()["total"]
    row("4", "remove a protected image with reviewed violations",
        f"{r.status_code}, {kept} violation(s) kept", r.status_code < 300 and kept >= 1)


def findings_5(c: Client) -> None:
    """/metrics stays the same size under invented methods: the first burst may add the
    few fixed ``other`` series (and a 429 one, 8 at once from one client), the second
    adds only digits to their counts."""
    def burst(tag: str) -> int:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: c.http.request(f"{tag}{k:04d}", "/v1/violations"),
                          range(1000)))
        return len(c.http.get("/metrics").content)

    start = len(c.http.get("/metrics").content)
    first, second = burst("X"), burst("Y")
    row("5", "2 x 1,000 requests with invented methods",
        f"/metrics {start} B, then {first} B, then {second} B", second - first < 500)


def main() -> int:
    """Start the server, replay every finding, print the table; 1 when any row fails."""
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = spawn(Path(tmp), secret)
        try:
            c = Client(base, secret)
            print("| finding | attack | answer or measure | verdict |\n|---|---|---|---|")
            vid = first_violation(c)
            findings_1(c, vid)
            findings_2(c, base, proc)
            findings_3(c)
            findings_3_4(c)
            findings_5(c)
        finally:
            proc.terminate()
            proc.wait(30)
    failed = [r for r in ROWS if not r[3]]
    print(f"{len(ROWS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
