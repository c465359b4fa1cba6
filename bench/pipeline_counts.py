"""Work done per candidate by ``monitor check`` and by a daemon submission, counted.

    python -m bench.pipeline_counts [--photos 12]

Counts, in this process, with instrumentation rather than by reading code:

* database round trips: SQL statements sent (SQLAlchemy ``before_cursor_execute``) plus
  commits (``commit`` event), on every engine;
* sha256 passes: calls of ``hashlib``'s sha256 constructor (a ``c_call`` profile event),
  and ``hashlib.new("sha256")``/``file_digest``;
* sniff passes: calls of the functions that compare bytes against a magic-byte table
  (:data:`SNIFFERS`, by file and function name, so the same script counts older trees);
* bytes written: the final size of every file opened for writing under the data folder
  other than the database (a ``sys.addaudithook`` ``open`` event), summed.

``check`` is measured as the marginal cost of 2N candidates over N (start-up excluded);
submissions as N uploads to an in-process ``monitor serve`` (idle polling off).
Candidates are real photos from scikit-image and DISC21-style edits of them, half of
them copies of the gallery. Prints a table; run it on two trees to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from PIL import Image, ImageOps

SNIFFERS = {("imaging/sniff.py", "sniff"), ("imaging/sniff.py", "document_kind"),
            ("decode.py", "_sniff_text"), ("inputs.py", "sniff"),
            ("server/intake.py", "sniff_image")}
"""(file suffix, function) of every magic-byte comparison, in this tree and older ones."""

GALLERY = ("astronaut", "coffee", "chelsea", "rocket")
OTHERS = ("camera", "coins", "moon", "page", "horse", "brick", "grass", "clock", "text",
          "immunohistochemistry", "hubble_deep_field", "cell")


class Counts:
    """Counters filled by the hooks while :attr:`on` is set."""

    def __init__(self, data_dir: Path) -> None:
        self.c: Counter[str] = Counter()
        self.on = False
        self.data_dir = os.path.realpath(data_dir)
        self.written: set[str] = set()
        self.sizes: dict[str, int] = {}

    def reset(self) -> None:
        """Zero every counter."""
        self.c.clear()
        self.written.clear()
        self.sizes.clear()

    def snapshot(self) -> Counter[str]:
        """Current counters, with bytes written summed over the files seen so far."""
        out = Counter(self.c)
        for p in self.written:
            if os.path.isfile(p):
                self.sizes[p] = os.path.getsize(p)
        out["bytes_written"] = sum(self.sizes.values())
        return out

    def install(self) -> None:
        """Hook SQLAlchemy, the profiler (all threads) and the audit log."""
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", lambda *a: self._add("db_round_trips"))
        event.listen(Engine, "commit", lambda *a: self._add("db_round_trips"))
        orig_new = hashlib.new

        def new(name, *a, **k):
            if str(name).lower() == "sha256":
                self._add("sha256_passes")
            return orig_new(name, *a, **k)

        hashlib.new = new
        sys.setprofile(self._profile)
        threading.setprofile(self._profile)
        sys.addaudithook(self._audit)

    def _add(self, key: str) -> None:
        if self.on:
            self.c[key] += 1

    def _profile(self, frame, event, arg) -> None:
        if not self.on:
            return
        if event == "c_call" and getattr(arg, "__name__", "") in ("openssl_sha256", "sha256"):
            self.c["sha256_passes"] += 1
        elif event == "call":
            code = frame.f_code
            if any(code.co_name == fn and code.co_filename.endswith(f)
                   for f, fn in SNIFFERS):
                self.c["sniff_passes"] += 1

    def _audit(self, event: str, args) -> None:
        if self.on and event == "os.rename" and os.path.realpath(args[0]) in self.written:
            src, dst = os.path.realpath(args[0]), os.path.realpath(args[1])
            self.written.discard(src)  # os.replace of a temporary file: count the target
            self.written.add(dst)
            if os.path.isfile(src):  # uploads are deleted once checked: size them now
                self.sizes[dst] = os.path.getsize(src)
        if not self.on or event != "open" or not isinstance(args[0], str):
            return
        path, mode, flags = args
        writing = ((mode and any(m in mode for m in "wax+"))
                   or (flags or 0) & (os.O_WRONLY | os.O_RDWR))
        path = os.path.realpath(path)
        if writing and path.startswith(self.data_dir) and ".db" not in path:
            self.written.add(path)


def photos() -> dict[str, Image.Image]:
    """Real photos from scikit-image's wheel, as RGB."""
    import numpy as np
    import skimage.data

    return {n: Image.fromarray(getattr(skimage.data, n)().astype(np.uint8)).convert("RGB")
            for n in GALLERY + OTHERS}


def jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def candidates(ims: dict[str, Image.Image], n: int) -> list[bytes]:
    """``n`` candidates: edited copies of the gallery and unrelated photos, alternating."""
    out = []
    for k in range(n):
        if k % 2 == 0:
            im = ims[GALLERY[(k // 2) % len(GALLERY)]]
            w, h = im.size
            edit = [ImageOps.mirror(im), im.crop((w // 10, h // 10, w, h)),
                    im.resize((w // 2, h // 2)), ImageOps.grayscale(im).convert("RGB")]
            out.append(jpeg(edit[(k // 2) % 4], quality=70 + k))
        else:
            out.append(jpeg(ims[OTHERS[(k // 2) % len(OTHERS)]], quality=70 + k))
    return out


def measure_check(root: Path, counts: Counts, cands: list[bytes]) -> dict[str, float]:
    """Marginal counts per candidate of ``monitor check`` (2N over N candidates)."""
    from typer.testing import CliRunner

    from monitor.cli import app

    runner = CliRunner()
    half = len(cands) // 2
    totals = []
    for run, batch in enumerate((cands[:half], cands)):
        folder = root / f"q{run}"
        folder.mkdir()
        for k, data in enumerate(batch):
            (folder / f"c{k:03d}.jpg").write_bytes(data)
        counts.reset()
        counts.on = True
        res = runner.invoke(app, ["check", str(folder), "--format", "jsonl"])
        counts.on = False
        assert res.exit_code == 0, res.output
        totals.append(counts.snapshot())
    n = len(cands) - half
    keys = set(totals[0]) | set(totals[1])
    return {k: (totals[1][k] - totals[0][k]) / n for k in sorted(keys)}


def measure_daemon(root: Path, counts: Counts, cands: list[bytes], secret: str) -> dict[str, float]:
    """Counts per upload submitted to an in-process daemon.

    Idle workers poll the queue every ``POLL`` seconds; the poll is set to an hour here
    (they are woken by each enqueue), so what is counted is the submissions' own work.
    """
    import httpx

    try:
        from monitor.outcome.signing import signed_headers
        from monitor.services.workspace import Workspace
    except ImportError:  # the flat layout before the layer packages
        from monitor.server.signing import signed_headers
        from monitor.workspace import Workspace
    from monitor.config import load_settings
    from monitor.daemon import Daemon

    try:
        import monitor.daemon.worker as worker
    except ImportError:
        import monitor.server.worker as worker
    worker.POLL = 3600.0

    ws = Workspace(load_settings(root / "config.toml"))
    daemon = Daemon(ws, str(root / "config.toml"), "127.0.0.1", 0, 1)
    daemon.start()
    try:
        base = f"http://127.0.0.1:{daemon.bound_port}"
        with httpx.Client(base_url=base, timeout=60) as client:
            signed = []  # the client's signing is not the server's work: done uncounted
            for data in cands:
                try:  # signature v2 (method, path, nonce, body hash)
                    h = signed_headers(secret, "POST", "/v1/submissions", data)
                except TypeError:  # older code signed v1: timestamp + body
                    h = signed_headers(secret, data)
                signed.append(h | {"Content-Type": "image/jpeg"})
            counts.reset()
            counts.on = True
            ids = []
            for data, h in zip(cands, signed, strict=True):
                r = client.post("/v1/submissions", content=data, headers=h)
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            db = sqlite3.connect(root / "data" / "monitor.db")  # not SQLAlchemy: not counted
            while db.execute("SELECT count(*) FROM job WHERE status IN ('done', 'error')"
                             ).fetchone()[0] < len(ids):
                time.sleep(0.2)
            db.close()
            work = counts.snapshot()
            counts.on = False
    finally:
        daemon.shutdown()
    return {k: work[k] / len(cands) for k in sorted(work)}


def main(argv: list[str] | None = None) -> None:
    """Build a gallery in a temporary folder, measure, print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=16, help="2N candidates (even)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)
        (root / "config.toml").write_text(
            "[clip]\nenabled = false\n[server]\n"
            f'webhook_secret = "{secret}"\n')
        ims = photos()
        gal = root / "gallery"
        gal.mkdir()
        for name in GALLERY:
            ims[name].save(gal / f"{name}.png")
        from typer.testing import CliRunner

        from monitor.cli import app

        res = CliRunner().invoke(app, ["gallery", "add", str(gal), "--collection", "bench"])
        assert res.exit_code == 0, res.output
        counts = Counts(root / "data")
        counts.install()
        cands = candidates(ims, args.candidates)
        check = measure_check(root, counts, cands)
        daemon = measure_daemon(root, counts, cands[: args.candidates // 2], secret)
    print(f"| per candidate | `monitor check` (marginal, {args.candidates // 2} more) "
          f"| daemon upload ({args.candidates // 2}) |")
    print("|---|---|---|")
    for key in ("db_round_trips", "sha256_passes", "sniff_passes", "bytes_written"):
        print(f"| {key} | {check.get(key, 0):.1f} | {daemon.get(key, 0):.1f} |")


if __name__ == "__main__":
    main()
