"""api / worker / scheduler as separate processes on PostgreSQL and a real broker.

The processes are real ``python -m monitor`` subprocesses (:mod:`bench.cluster`), the
database a fresh schema of the machine's PostgreSQL, the broker a private
``redis-server`` (so it can be killed and restarted without touching the machine's) or
the machine's RabbitMQ.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlmodel import Session

from bench.cluster import Cluster, PgSchema, RedisServer, variants
from monitor.store.models import Candidate, Job, Violation
from tests.conftest import encode, skimage_photo

GALLERY = ("astronaut", "coffee", "chelsea", "immunohistochemistry")
UNRELATED = ("camera", "coins", "moon", "page", "horse", "brick", "grass", "clock")


@pytest.fixture
def pg():
    schema = PgSchema()
    yield schema
    schema.drop()


@pytest.fixture
def redis():
    server = RedisServer()
    yield server
    server.stop()


def wait_for(predicate, timeout: float, step: float = 0.2):
    """``predicate()``'s first truthy value within ``timeout`` s, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(step)
    return None


def counts(db) -> dict[str, int]:
    with Session(db) as s:
        return dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())


def test_separate_roles_check_every_submission_once(tmp_path: Path, pg: PgSchema,
                                                     redis: RedisServer) -> None:
    """500 signed submissions through api + 2 workers + scheduler; one worker SIGKILLed
    mid-way and the broker restarted (its messages lost): every accepted submission ends
    done, one candidate row each, no duplicated violation; then a gallery image added
    through the API is matched by a worker within 10 s."""
    cluster = Cluster(tmp_path / "deploy", pg.url, redis.url, threads=2, lease=8,
                      sweep_after=4)
    db = create_engine(pg.url)
    try:
        cluster.add_gallery({n: skimage_photo(n) for n in GALLERY})
        cluster.api()
        doomed, survivor = cluster.worker(), cluster.worker()
        cluster.scheduler()
        payloads = variants([skimage_photo(n) for n in GALLERY + UNRELATED], 500)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(cluster.submit, payloads))
        assert all(r.status_code == 202 for r in answers), [r.text for r in answers][:3]
        ids = {r.json()["id"] for r in answers}
        assert len(ids) == 500
        assert wait_for(lambda: counts(db).get("done", 0) >= 100, 120), counts(db)
        doomed.kill()  # SIGKILL mid-way: its leased jobs stay "running" until the lease ends
        redis.restart()  # every queued message is gone
        assert wait_for(lambda: counts(db).get("done", 0) == 500, 300), \
            (counts(db), "".join(survivor.lines[-20:]))
        with Session(db) as s:
            cands = s.execute(select(Candidate.id).where(
                Candidate.source.like("upload:%"))).scalars().all()
            assert len(cands) == 500, "one candidate row per accepted submission"
            per_job = s.execute(select(Job.candidate_id).where(Job.id.in_(ids))).scalars()
            assert sorted(per_job) == sorted(cands)
            twice = s.execute(select(Violation.candidate_id).group_by(Violation.candidate_id)
                              .having(func.count() > 1)).all()
            assert twice == [], "at most one violation per candidate"
            flagged = set(s.execute(select(Job.id).join(
                Violation, Violation.candidate_id == Job.candidate_id)).scalars())
        order = [r.json()["id"] for r in answers]  # variants cycle GALLERY, then UNRELATED
        copies = {j for i, j in enumerate(order) if i % 12 < len(GALLERY)}
        assert len(flagged & copies) >= 0.7 * len(copies), "copies of gallery photos found"
        assert not flagged - copies, "no unrelated photo flagged"
        logged_by_doomed = set(doomed.completed())
        survivor_done = survivor.completed()
        again = [j for j in survivor_done if j in logged_by_doomed]
        assert len(again) <= 2, "only jobs in flight at the kill may be checked again"
        assert len(set(survivor_done)) == len(survivor_done), "no job checked twice by one"
        assert len(logged_by_doomed | set(survivor_done)) == 500
        health = cluster.send("GET", "/healthz").json()
        assert health["queue"]["error"] == 0 and health["broker"]["kind"] == "redis"
        assert health["role"] == "api" and health["scheduler"]["ok"], health

        rocket = skimage_photo("rocket")
        t0 = time.monotonic()
        r = cluster.send("POST", "/v1/gallery", data={"collection": "portfolio"},
                         files={"file": ("rocket.png", encode(rocket, "PNG"), "image/png")})
        assert r.status_code == 201, r.text
        new_id = r.json()["results"][0]["id"]

        def matched(i=iter(range(1000))) -> bool:
            copy = encode(rocket.resize((300 + next(i), 200)), "JPEG", quality=80)
            job = cluster.submit(copy).json()["id"]
            doc = wait_for(lambda: (d := cluster.status(job))["status"] == "done" and d, 10,
                           0.05)
            hits = [int(m["gallery_id"]) for m in (doc or {}).get("result", {}).get(
                "matches", [])]
            return new_id in hits

        assert wait_for(matched, 10, 0.0), "the new gallery image is matched within 10 s"
        print(f"gallery change matched by a worker after {time.monotonic() - t0:.2f} s")
    finally:
        cluster.stop()
        db.dispose()


def test_two_schedulers_one_active(tmp_path: Path) -> None:
    """Two ``monitor scheduler`` on one database (the embedded SQLite): one is active;
    when it is SIGKILLed the other takes over at once (same host, holder gone)."""
    cluster = Cluster(tmp_path / "deploy", f"sqlite:///{tmp_path / 'deploy' / 'm.db'}", "")
    try:
        first = cluster.scheduler()
        second = cluster.scheduler()
        active = [r for r in (first, second)
                  if any("active scheduler" in line for line in r.lines)]
        assert active == [first], "".join(second.lines[-5:])
        first.kill()
        assert wait_for(lambda: any("active scheduler" in line for line in second.lines), 8)
    finally:
        cluster.stop()


def test_rabbitmq_broker(tmp_path: Path, pg: PgSchema) -> None:
    """The same roles over the machine's RabbitMQ (amqp://guest:guest@127.0.0.1:5672//);
    the worker's own /metrics counts the checks it ran."""
    pika = pytest.importorskip("pika")
    queue_name = f"monitor-test-{uuid.uuid4().hex[:8]}"
    cluster = Cluster(tmp_path / "deploy", pg.url, "amqp://guest:guest@127.0.0.1:5672//")
    cfg = cluster.root / "config.toml"
    cfg.write_text(cfg.read_text() + f'name = "{queue_name}"\n')
    try:
        cluster.add_gallery({n: skimage_photo(n) for n in GALLERY[:2]})
        cluster.api()
        worker = cluster.worker("--metrics-port", "0")
        payloads = variants([skimage_photo(n) for n in GALLERY[:2]], 20, seed=3)
        ids = [cluster.submit(d).json()["id"] for d in payloads]
        assert wait_for(lambda: all(cluster.status(i)["status"] == "done" for i in ids), 60)
        assert cluster.send("GET", "/healthz").json()["broker"]["kind"] == "amqp"
        scraped = httpx.get(f"http://127.0.0.1:{worker.metrics_port}/metrics").text
        checks = sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines()
                     if line.startswith("monitor_checks_total{"))
        assert checks == 20, scraped
        assert 'monitor_jobs{state="done"}' in scraped
    finally:
        cluster.stop()
        with pika.BlockingConnection(pika.URLParameters(
                "amqp://guest:guest@127.0.0.1:5672/%2F")) as conn:
            ch = conn.channel()
            for q in (queue_name, f"{queue_name}.DQ", f"{queue_name}.XQ"):
                ch.queue_delete(q)


def test_embedded_serve_follows_a_gallery_add_from_another_process(tmp_path: Path) -> None:
    """``monitor serve`` (embedded queue, SQLite) picks up images that ``monitor gallery
    add`` put in the gallery while it runs: a copy is matched within seconds."""
    from monitor.config import load_settings
    from monitor.services.gallery import add_paths
    from monitor.services.workspace import Workspace
    from tests.loopback import serve, wait_done

    daemon, client = serve(tmp_path / "deploy")
    try:
        other = Workspace(load_settings(tmp_path / "deploy" / "config.toml"))  # "the CLI"
        skimage_photo("rocket").save(tmp_path / "rocket.png")
        added = add_paths(other, [str(tmp_path / "rocket.png")], "portfolio")[0]
        other.db.dispose()
        assert wait_for(lambda: daemon.sync.version >= 0 and daemon.sync.last is not None
                        and daemon.sync.last.images == 4, 5), "synced within 5 s"
        copy = encode(skimage_photo("rocket").resize((320, 213)), "JPEG", quality=75)
        r = client.post("/v1/submissions", content=copy,
                        headers={"Content-Type": "image/jpeg"})
        doc = wait_done(client, r.json()["id"])
        hits = [int(m["gallery_id"]) for m in doc["result"]["matches"]]
        assert added.gallery_id in hits
    finally:
        daemon.shutdown()
        client.close()
