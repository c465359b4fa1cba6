"""The durable queue: idempotent enqueue, atomic leases, fencing, retries and recovery."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from monitor.store import queue
from monitor.store.db import open_engine
from monitor.store.models import Job, utcnow


@pytest.fixture
def db(database_url: str):
    engine = open_engine(database_url)
    yield engine
    engine.dispose()


def test_enqueue_is_idempotent_by_sha_and_key(db) -> None:
    a = queue.enqueue(db, "submission", path="uploads/x", sha256="ab" * 32)
    b = queue.enqueue(db, "submission", path="uploads/x", sha256="ab" * 32)
    assert a.created and not b.created and a.job.id == b.job.id
    c = queue.enqueue(db, "submission", url="https://e.example/a.jpg", idempotency_key="k1")
    d = queue.enqueue(db, "submission", url="https://e.example/b.jpg", idempotency_key="k1")
    assert c.created and not d.created and d.job.id == c.job.id
    # a new key for already-known content still returns the first job
    e = queue.enqueue(db, "submission", path="uploads/x", sha256="ab" * 32, idempotency_key="k2")
    assert e.job.id == a.job.id
    assert queue.depth(db) == 2


def test_source_jobs_dedupe_by_location_while_active(db) -> None:
    a = queue.enqueue(db, "crawl", source="shop", url="https://s/1.jpg", dedupe_location=True)
    b = queue.enqueue(db, "crawl", source="shop", url="https://s/1.jpg", dedupe_location=True)
    assert a.created and not b.created
    job = queue.lease(db, "w")
    assert queue.complete(db, job)
    c = queue.enqueue(db, "crawl", source="shop", url="https://s/1.jpg", dedupe_location=True)
    assert c.created, "a finished job does not block the next sighting"


def test_queue_full(db) -> None:
    queue.enqueue(db, "submission", sha256="1" * 64, max_depth=1)
    with pytest.raises(queue.QueueFull):
        queue.enqueue(db, "submission", sha256="2" * 64, max_depth=1)
    assert not queue.enqueue(db, "submission", sha256="1" * 64, max_depth=1).created


def test_concurrent_leases_never_share_a_job(db) -> None:
    for i in range(60):
        queue.enqueue(db, "submission", sha256=f"{i:064x}")
    got: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := queue.lease(db, name, 60)) is not None:
            with lock:
                got.append(job.id)
            queue.complete(db, job)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 60 == len(set(got))
    assert queue.counts(db) == {"done": 60}


def test_fail_retries_with_backoff_then_errors(db) -> None:
    queue.enqueue(db, "submission", sha256="f" * 64)
    job = queue.lease(db, "w")
    assert job.attempts == 1
    assert queue.fail(db, job, "boom", max_attempts=2, backoff=60) == "queued"
    assert queue.lease(db, "w") is None, "not due before the backoff"
    with Session(db) as s:
        s.execute(update(Job).values(not_before=utcnow() - timedelta(seconds=1)))
        s.commit()
    job = queue.lease(db, "w")
    assert job.attempts == 2
    assert queue.fail(db, job, "boom again", max_attempts=2) == "error"
    row = queue.get(db, job.id)
    assert row.status == "error" and row.error == "boom again"
    assert queue.retry_delay(1, 5) == 5 and queue.retry_delay(3, 5) == 20


def test_recover_expired_leases_and_fencing(db) -> None:
    queue.enqueue(db, "submission", sha256="e" * 64)
    stale = queue.lease(db, "w1", lease_seconds=-1)  # already expired
    assert queue.recover(db) == 1
    fresh = queue.lease(db, "w2", lease_seconds=60)
    assert fresh.id == stale.id and fresh.attempts == 2
    assert not queue.complete(db, stale), "the old lease holder is fenced off"
    assert queue.recover(db) == 0, "a live lease is left alone"
    assert queue.release(db, fresh)
    again = queue.get(db, fresh.id)
    assert again.status == "queued" and again.attempts == 1


def test_recover_gives_up_on_poison_jobs(db) -> None:
    queue.enqueue(db, "submission", sha256="d" * 64)
    for _ in range(3):
        queue.lease(db, "w", lease_seconds=60)
        queue.recover(db, max_attempts=3, all_running=True)
    row = queue.get(db, queue.enqueue(db, "submission", sha256="d" * 64).job.id)
    assert row.status == "error" and "worker lost" in row.error


def _lease_all(url: str, name: str, threads: int, start, ready) -> tuple[list[str], list[int]]:
    """Lease and complete jobs from ``threads`` threads on one engine of its own until the
    queue answers None. Returns the ids leased and, for each thread, how many jobs were
    still ``queued`` when it got None. ``ready`` gets ``name`` once the engine is open,
    then the threads wait for ``start`` (a multiprocessing Event)."""
    db = open_engine(url)
    got: list[str] = []
    left: list[int] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        start.wait(60)
        while (job := queue.lease(db, f"{name}-{i}", 60)) is not None:
            with lock:
                got.append(job.id)
            assert queue.complete(db, job), job.id
        queued = queue.counts(db).get("queued", 0)
        with lock:
            left.append(queued)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    ready.put(name)
    for t in pool:
        t.join()
    db.dispose()
    return got, left


def _lease_process(url: str, name: str, threads: int, start, ready, out) -> None:
    out.put((name, _lease_all(url, name, threads, start, ready)))


def test_lease_skips_rows_other_workers_hold() -> None:
    """On PostgreSQL the lease's subquery locks its row and skips locked ones; SQLite
    (one writer at a time) gets no FOR UPDATE at all."""
    stmt = queue.lease_statement(utcnow(), utcnow())
    assert "FOR UPDATE SKIP LOCKED" in str(stmt.compile(dialect=postgresql.dialect()))
    assert "FOR UPDATE" not in str(stmt.compile(dialect=sqlite.dialect()))


def test_processes_and_threads_lease_each_job_exactly_once(db, database_url: str) -> None:
    """Two worker processes (each its own engine, four threads) and two threads here
    lease 200 queued jobs at once until the queue is empty: each job is leased once, and
    a worker is told "nothing to do" only when every job left is being leased by another
    (at most one per other worker): without SKIP LOCKED, PostgreSQL workers that chose
    the same row would come back empty with most of the queue still waiting."""
    made = queue.enqueue_many(db, [dict(kind="submission", sha256=f"{i:064x}")
                                   for i in range(200)])
    ids = {r.job.id for r in made}
    ctx = multiprocessing.get_context("spawn")
    start, ready, out = ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_lease_process, args=(database_url, f"p{i}", 4, start, ready,
                                                       out)) for i in range(2)]
    for p in procs:
        p.start()
    results: dict[str, tuple[list[str], list[int]]] = {}
    local = threading.Thread(target=lambda: results.__setitem__(
        "main", _lease_all(database_url, "main", 2, start, ready)))
    local.start()
    try:
        assert sorted(ready.get(timeout=120) for _ in range(3)) == ["main", "p0", "p1"]
        start.set()
        results.update(out.get(timeout=120) for _ in procs)
    finally:
        start.set()
        for p in procs:
            p.join(60)
        local.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    leased = Counter(i for got, _ in results.values() for i in got)
    assert set(leased) == ids, "every job leased, none left"
    assert max(leased.values()) == 1, "no job leased twice"
    assert results["p0"][0] and results["p1"][0], "both processes got work"
    left = [n for _, lefts in results.values() for n in lefts]
    assert len(left) == 10 and max(left) < 10, f"jobs still queued when told none: {left}"
    assert queue.counts(db) == {"done": 200}
