"""Resources bounded before authentication (issue 19), on a real daemon on loopback.

* Concurrent requests: stalled uploads hold their slots; one more from the same address,
  or beyond the total, gets 429 with ``Retry-After`` at once, its body unread.
* ``/metrics`` keeps its size under 1,000 requests with invented methods and paths.
* Decodes wait for a memory budget: 4 concurrent ``/v1/search`` of an 8900×8900 PNG
  stay under it (and exceed it without one), and :func:`estimate` covers the peak
  measured in a fresh process (the measurement that set its numbers).
"""

from __future__ import annotations

import ctypes
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from monitor.imaging.budget import MIB, MemoryBudget, estimate
from monitor.imaging.decode import DecodeLimits
from tests.conftest import encode, skimage_photo
from tests.loopback import serve

BIG = 8900
"""Side of the large test images (79.2 Mpx, just under ``decode.max_pixels``)."""


def stalled_upload(port: int, source: str, length: int = 1_000_000) -> socket.socket:
    """A ``POST /v1/search`` from ``source`` (a 127/8 address) that sends its headers
    and 4 bytes of a ``length``-byte body, then nothing: a slow uploader."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                 b"Content-Length: %d\r\n\r\n\x89PNG" % length)
    return sock


def client_from(port: int, source: str) -> httpx.Client:
    """An HTTP client whose connections come from ``source``."""
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                        transport=httpx.HTTPTransport(local_address=source))


def eventually(get: Callable[[], httpx.Response], status: int, within: float = 5) -> httpx.Response:
    """The first answer of ``get()`` with ``status`` (polled while the server catches up)."""
    deadline = time.monotonic() + within
    while True:
        r = get()
        if r.status_code == status or time.monotonic() > deadline:
            assert r.status_code == status, (r.status_code, r.text)
            return r
        time.sleep(0.05)


def test_concurrent_requests_limited_per_client_and_in_all(tmp_path: Path) -> None:
    daemon, client = serve(tmp_path, max_concurrent_requests=5, max_concurrent_per_client=3)
    port, held = daemon.bound_port, []
    a, b, c = (client_from(port, f"127.0.0.{n}") for n in (2, 3, 4))
    try:
        assert a.get("/openapi.json").status_code == 200
        held += [stalled_upload(port, "127.0.0.2") for _ in range(3)]
        r = eventually(lambda: a.get("/openapi.json"), 429)
        assert r.headers["Retry-After"] == "5" and r.headers["Connection"] == "close"
        assert "from one client" in r.json()["detail"]
        assert a.get("/healthz").status_code == 429  # probes count per client
        assert b.get("/openapi.json").status_code == 200  # another client is not held up

        held += [stalled_upload(port, "127.0.0.3") for _ in range(2)]  # 5 in all now
        r = eventually(lambda: c.get("/openapi.json"), 429)
        assert "in all" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200  # probes are outside the total
        assert c.get("/metrics").status_code == 200

        # over the limit, a 50 MB upload is answered at once, without its body being read
        sock = stalled_upload(port, "127.0.0.4", length=50_000_000)
        start, answer = time.monotonic(), b""
        while chunk := sock.recv(65536):  # the server closes after answering
            answer += chunk
        sock.close()
        assert time.monotonic() - start < 2
        assert answer.startswith(b"HTTP/1.1 429 ") and b"retry-after: 5" in answer.lower()

        for sock in held:  # slots come back when the uploaders go away
            sock.close()
        held.clear()
        eventually(lambda: a.get("/openapi.json"), 200)
        eventually(lambda: c.get("/openapi.json"), 200)
        text = client.get("/metrics").text
        assert 'monitor_http_refused_total{limit="client"} 2.0' in text
        assert 'monitor_http_refused_total{limit="total"} 2.0' in text
        assert 'route="unmatched",status="429"' in text
    finally:
        for sock in held:
            sock.close()
        for x in (a, b, c, client):
            x.close()
        daemon.shutdown()


def test_metrics_size_stable_under_invented_methods(tmp_path: Path) -> None:
    daemon, client = serve(tmp_path, max_concurrent_per_client=16)

    def one(i: int) -> None:
        client.request(f"X{i}QZ", "/healthz" if i % 2 else f"/no/such/{i}")
        if i % 10 == 0:
            client.request("GET", f"/v1/submissions/{i}x")
            client.request("GET", "/openapi.json")

    try:
        with ThreadPoolExecutor(12) as pool:  # ~45 ms a request on this loopback
            list(pool.map(one, range(10)))  # the "other" and "unmatched" series exist now
            client.get("/metrics")
            before = len(client.get("/metrics").content)
            list(pool.map(one, range(10, 1010)))
        after = client.get("/metrics")
        assert abs(len(after.content) - before) < 300, (before, len(after.content))
        assert 'method="other",route="/healthz",status="405"' in after.text
        assert 'method="other",route="unmatched",status="404"' in after.text
        assert 'method="GET",route="/v1/submissions/{job_id}"' in after.text
        assert 'method="GET",route="/openapi.json",status="200"' in after.text
        assert "X5QZ" not in after.text and "/no/such" not in after.text
    finally:
        client.close()
        daemon.shutdown()


# -- the memory budget ------------------------------------------------------------------


def test_budget_admits_claims_that_fit_and_runs_an_oversized_one_alone() -> None:
    budget, log, lock = MemoryBudget(100), [], threading.Lock()

    def work(name: str, size: int, hold: float) -> None:
        with budget.claim(size):
            with lock:
                log.append((name, "in", budget.used))
            time.sleep(hold)

    with ThreadPoolExecutor(4) as pool:
        first = [pool.submit(work, n, 40, 0.3) for n in "ab"]  # fit together: 80
        time.sleep(0.05)
        big = pool.submit(work, "big", 500, 0.1)  # over the budget: waits for a, b
        time.sleep(0.05)
        late = pool.submit(work, "c", 10, 0)  # would fit, but arrives after big
        for f in (*first, big, late):
            f.result(5)
    assert [x[0] for x in log] == ["a", "b", "big", "c"]
    assert dict((n, used) for n, _, used in log) == {"a": 40, "b": 80, "big": 500, "c": 10}
    assert budget.used == 0 and budget.waiting == 0 and budget.peak == 500
    with pytest.raises(ValueError):
        MemoryBudget(0)


@pytest.fixture(scope="module")
def big_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8900×8900 RGB PNG of scikit-image's astronaut (nearest-neighbour upscale: 2 MB
    of upload for 317 MB of pixels, so the decodes, not the bodies, dominate memory)."""
    path = tmp_path_factory.mktemp("big") / "astronaut.png"
    im = skimage_photo("astronaut").resize((BIG, BIG), Image.Resampling.NEAREST)
    im.save(path, compress_level=1)
    return path


def hwm_reset() -> int:
    """Reset this process's peak RSS (``/proc/self/clear_refs`` 5) after handing freed
    heap back to the system (``malloc_trim``); returns the RSS now (bytes)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def search_peak(root: Path, data: bytes, budget_mb: int, mp: pytest.MonkeyPatch) -> int:
    """Peak RSS above the baseline (bytes) while 4 ``/v1/search`` of ``data`` run at once
    on a fresh daemon with ``decode.memory_budget_mb = budget_mb``."""
    mp.setenv("MONITOR_DECODE__MEMORY_BUDGET_MB", str(budget_mb))
    root.mkdir()
    daemon, client = serve(root, max_upload_bytes=10_000_000)
    try:
        small = encode(skimage_photo("coffee"), "PNG")
        assert client.post("/v1/search", content=small,
                           headers={"Content-Type": "image/png"}).status_code == 200
        baseline = hwm_reset()

        def search(_: int) -> int:
            return client.post("/v1/search", content=data,
                               headers={"Content-Type": "image/png"}).status_code

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(search, range(4))) == [200] * 4
        return _status("VmHWM") - baseline
    finally:
        client.close()
        daemon.shutdown()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_concurrent_large_decodes_stay_under_the_budget(tmp_path: Path, big_png: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    data = big_png.read_bytes()
    one = estimate(data, DecodeLimits(work_side=512))  # hash-only daemon: 343 MB
    budget = 400 * MIB  # one decode at a time: two estimates do not fit
    assert one < budget < 2 * one
    bounded = search_peak(tmp_path / "bounded", data, 400, monkeypatch)
    unbounded = search_peak(tmp_path / "unbounded", data, 8192, monkeypatch)
    print(f"peak RSS over baseline: {bounded / MIB:.0f} MiB with a 400 MiB budget, "
          f"{unbounded / MIB:.0f} MiB with 8192 MiB")
    assert bounded < budget
    assert unbounded > 2 * budget  # the same run without the budget does fail the bound


DECODE_PEAK = """
import gc, json, sys
import psutil
from PIL import Image
from monitor.imaging.decode import DecodeLimits, decode_bytes
Image.init()  # codec plugins (libavif's codecs: ~36 MB) load once per process, not per decode
data = open(sys.argv[1], "rb").read()
limits = DecodeLimits(work_side=int(sys.argv[2]))
gc.collect()
before = psutil.Process().memory_info().rss
decode_bytes(data, limits)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps(int(hwm.split()[1]) * 1024 - before))
"""


def decode_peak(path: Path, work_side: int) -> int:
    """Peak memory (bytes) of ``decode_bytes`` on the file ``path`` in a fresh process:
    its peak RSS (``VmHWM``; ``ru_maxrss`` would keep the parent's peak across ``exec``)
    after the decode minus the RSS just before it (bytes read, Pillow's plugins loaded)."""
    out = subprocess.run([sys.executable, "-c", DECODE_PEAK, str(path), str(work_side)],
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def measured(big_png: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Images whose decode peaks :func:`estimate` is checked against."""
    folder = tmp_path_factory.mktemp("measured")
    im = Image.open(big_png)
    im.save(folder / "progressive.jpg", quality=90, progressive=True)
    mid = im.resize((4000, 4000), Image.Resampling.NEAREST)
    mid.convert("RGBA").save(folder / "rgba.png", compress_level=1)
    mid.save(folder / "rgb.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    mid.convert("L").save(folder / "rotated_l.png", compress_level=1, exif=exif)
    yield folder


@pytest.mark.parametrize("name,side", [("big", 1024), ("progressive.jpg", 512),
                                       ("rgba.png", 1024), ("rgb.jpg", 1024),
                                       ("rotated_l.png", 512)])
def test_estimate_covers_the_measured_decode_peak(name: str, side: int, big_png: Path,
                                                  measured: Path) -> None:
    path = big_png if name == "big" else measured / name
    peak = decode_peak(path, side)
    guess = estimate(path.read_bytes(), DecodeLimits(work_side=side))
    assert peak <= guess <= 1.6 * peak + 8 * MIB, (peak, guess)
