"""The durable queue: idempotent enqueue, atomic leases, fencing, retries and recovery."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session

from monitor.store import queue
from monitor.store.db import open_engine
from monitor.store.models import Job, utcnow


@pytest.fixture
def db(tmp_path: Path):
    engine = open_engine(f"sqlite:///{tmp_path / 'q.db'}")
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
