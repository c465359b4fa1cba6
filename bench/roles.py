"""Separate roles on PostgreSQL and Redis: throughput per worker count, gallery-change
propagation, and worker memory across gallery reloads.

    python -m bench.roles [--submissions 300] [--workers 1 --workers 2 --workers 4]
                          [--changes 100] [--json]
    python -m bench.roles --fault 1000

One deployment (:mod:`bench.cluster`: a fresh PostgreSQL schema, a private
``redis-server``, pHash + SSCD stages, 6 scikit-image photos protected) with one
``monitor serve --role api`` and one ``monitor scheduler`` for the whole run.

* **Throughput**: per worker count W, ``--submissions`` new signed submissions (edited
  copies and unrelated photos, 1:2) are queued with no worker running, then W
  ``monitor worker`` processes (one check thread each) start together; candidates per
  second is counted from the moment the last of them is ready until the queue is empty. Reported
  with its ratio to W = 1 measured in the same run. This machine has 2 cores: beyond 2
  workers they share cores, so the ratio shows the overhead of more processes, not
  scale-out; on several machines each worker brings its own cores.
* **Propagation**: ``POST /v1/gallery`` of a photo not yet protected, then edited
  copies submitted until a worker's result names the new image; seconds from the POST.
  Five photos; median and max.
* **Reloads**: ``--changes`` gallery changes through the API (add a photo, delete it,
  alternately), each synced incrementally by a running worker; its RSS before, halfway
  and after (psutil), and the time it took to sync the last change.
* ``--fault N``: the acceptance run of the roles: N signed submissions to api + 2
  workers + scheduler, one worker SIGKILLed after a fifth is done and the broker
  restarted (its messages lost); the jobs' final states, distinct candidate rows, and
  jobs checked by both workers (only those in flight at the kill may be).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from sqlalchemy import create_engine, func, select
from sqlmodel import Session

from bench.cluster import Cluster, PgSchema, RedisServer, variants
from monitor.store.models import Job

GALLERY = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
           "immunohistochemistry")
OTHERS = ("camera", "coins", "moon", "page", "horse", "brick", "grass", "clock")
NEW = ("retina", "colorwheel", "logo", "text", "gravel")


def photo(name: str):
    """A scikit-image sample as RGB."""
    import numpy as np
    import skimage.data
    from PIL import Image

    return Image.fromarray(getattr(skimage.data, name)().astype(np.uint8)).convert("RGB")


def _png(im) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _jpeg(im, side: int) -> bytes:
    import io

    buf = io.BytesIO()
    im.resize((side, max(1, side * im.height // im.width))).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def queued(db) -> int:
    with Session(db) as s:
        return s.execute(select(func.count()).select_from(Job).where(
            Job.status.in_(("queued", "running")))).scalar_one()


def done(db) -> int:
    with Session(db) as s:
        return s.execute(select(func.count()).select_from(Job).where(
            Job.status == "done")).scalar_one()


def throughput(cluster: Cluster, db, n: int, workers: int, seed: int) -> float:
    """Candidates per second of ``workers`` one-thread worker processes."""
    photos = [photo(p) for p in GALLERY[:2] + OTHERS[:4]]
    for data in variants(photos, n, seed=seed):
        assert cluster.submit(data).status_code == 202
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:  # started together: none gets a head start
        procs = list(pool.map(lambda _: cluster.worker(), range(workers)))
    start, t0 = done(db), time.perf_counter()
    cpu0 = _cpu()
    while queued(db):
        time.sleep(0.05)
    took = time.perf_counter() - t0
    rate = (done(db) - start) / took
    import re

    ms = sorted(int(m.group(1)) for p in procs for line in p.lines
                if (m := re.search(r"candidate \d+ \w+ in (\d+) ms", line)))
    print(f"  {workers} worker(s): cores busy {(_cpu() - cpu0) / took:.2f} "
          f"(whole machine) over {took:.1f} s; check p50 {ms[len(ms) // 2] if ms else '-'} ms",
          file=sys.stderr)
    for p in procs:
        p.stop()
    return rate


def _cpu() -> float:
    """CPU seconds used by the whole machine so far (user + system)."""
    t = psutil.cpu_times()
    return t.user + t.system


def propagation(cluster: Cluster, name: str) -> float:
    """Seconds from ``POST /v1/gallery`` of ``name`` to a worker matching a copy of it."""
    im = photo(name)
    t0 = time.perf_counter()
    r = cluster.send("POST", "/v1/gallery", data={"collection": "portfolio"},
                     files={"file": (f"{name}.png", _png(im), "image/png")})
    new_id = r.json()["results"][0]["id"]
    side = 300
    while time.perf_counter() - t0 < 60:
        side += 1
        job = cluster.submit(_jpeg(im, side)).json()["id"]
        while (doc := cluster.status(job))["status"] not in ("done", "error"):
            time.sleep(0.02)
        if any(int(m["gallery_id"]) == new_id
               for m in (doc.get("result") or {}).get("matches", [])):
            return time.perf_counter() - t0
    return float("inf")


def reloads(cluster: Cluster, worker, changes: int) -> dict:
    """RSS of ``worker`` across ``changes`` gallery changes (add, delete, ...)."""
    proc = psutil.Process(worker.proc.pid)
    im = photo("camera")
    rss = [proc.memory_info().rss]
    gid = None
    for i in range(changes):
        if gid is None:
            r = cluster.send("POST", "/v1/gallery", data={"collection": "churn"},
                             files={"file": ("camera.png", _png(im), "image/png")})
            gid = r.json()["results"][0]["id"]
        else:
            cluster.send("DELETE", f"/v1/gallery/{gid}")
            gid = None
        time.sleep(0.6)  # one gallery_sync period (0.5 s): each change synced on its own
        if i + 1 in (changes // 2, changes):
            rss.append(proc.memory_info().rss)
    synced = [line for line in worker.lines if "indices synced" in line]
    return {"changes": changes, "syncs_logged": len(synced),
            "rss_mb": [round(r / 2**20, 1) for r in rss],
            "last_sync": synced[-1].split(", ")[-1].strip() if synced else None}


def fault(n: int) -> dict:
    """The issue's bar: api + 2 workers + scheduler; ``n`` signed submissions; one worker
    SIGKILLed and the broker restarted mid-way; counts of what ended where."""
    pg, redis = PgSchema(), RedisServer()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp) / "deploy", pg.url, redis.url, threads=2, lease=8,
                          sweep_after=4)
        db = create_engine(pg.url)
        try:
            cluster.add_gallery({n: photo(n) for n in GALLERY})
            cluster.api()
            doomed, survivor = cluster.worker(), cluster.worker()
            cluster.scheduler()
            t0 = time.perf_counter()
            from concurrent.futures import ThreadPoolExecutor

            payloads = variants([photo(p) for p in GALLERY + OTHERS], n, seed=7)
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(cluster.submit, payloads))
            accepted = {r.json()["id"] for r in answers if r.status_code == 202}
            while done(db) < n // 5:
                time.sleep(0.05)
            doomed.kill()
            redis.restart()
            while queued(db):
                time.sleep(0.1)
            took = time.perf_counter() - t0
            with Session(db) as s:
                states = dict(s.execute(select(Job.status, func.count()).group_by(
                    Job.status)).all())
                candidates = s.execute(select(func.count(func.distinct(Job.candidate_id)))
                                       .where(Job.id.in_(accepted))).scalar_one()
            first, second = set(doomed.completed()), survivor.completed()
            return {"submitted": n, "accepted": len(accepted), "states": states,
                    "distinct_candidates": candidates,
                    "checked_by_both": len(first & set(second)),
                    "checked_twice_by_one": len(second) - len(set(second)),
                    "seconds": round(took, 1)}
        finally:
            cluster.stop()
            db.dispose()
            redis.stop()
            pg.drop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--submissions", type=int, default=300)
    ap.add_argument("--workers", type=int, action="append")
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--fault", type=int, metavar="N",
                    help="only the fault run: N submissions, a worker SIGKILLed and the "
                         "broker restarted mid-way")
    args = ap.parse_args(argv)
    if args.fault:
        print(json.dumps(fault(args.fault), indent=1))
        return
    counts = args.workers or [1, 2, 4]
    pg, redis = PgSchema(), RedisServer()
    out: dict = {"cores": psutil.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp) / "deploy", pg.url, redis.url, threads=1)
        db = create_engine(pg.url)
        try:
            cluster.add_gallery({n: photo(n) for n in GALLERY})
            cluster.api()
            cluster.scheduler()
            rates = {w: throughput(cluster, db, args.submissions, w, seed=w) for w in counts}
            base = rates[counts[0]]
            out["throughput"] = [{"workers": w, "candidates_per_s": round(r, 1),
                                  "ratio": round(r / base, 2)} for w, r in rates.items()]
            worker = cluster.worker()
            times = [propagation(cluster, name) for name in NEW]
            out["propagation_s"] = {"median": round(statistics.median(times), 2),
                                    "max": round(max(times), 2),
                                    "each": [round(t, 2) for t in times]}
            out["reloads"] = reloads(cluster, worker, args.changes)
        finally:
            cluster.stop()
            db.dispose()
            redis.stop()
            pg.drop()
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"cores: {out['cores']}")
    for row in out["throughput"]:
        print(f"{row['workers']} worker(s): {row['candidates_per_s']:.1f} candidates/s "
              f"({row['ratio']:.2f}x of {counts[0]})")
    p = out["propagation_s"]
    print(f"gallery change to a worker's match: median {p['median']} s, max {p['max']} s")
    r = out["reloads"]
    print(f"worker RSS across {r['changes']} gallery changes: {r['rss_mb']} MB "
          f"({r['syncs_logged']} syncs; last {r['last_sync']})")


if __name__ == "__main__":
    sys.exit(main())
