"""Leases, counters, leasing a named job and the sweep, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session

from monitor.config import load_settings
from monitor.daemon.messages import Dispatcher
from monitor.daemon.sweeper import sweep
from monitor.services.workspace import Workspace
from monitor.store import coordination, dispatch, queue
from monitor.store.db import open_engine
from monitor.store.models import Job, utcnow


@pytest.fixture
def db(database_url: str):
    engine = open_engine(database_url)
    yield engine
    engine.dispose()


def test_lease_one_holder_renewal_expiry_and_release(db) -> None:
    assert coordination.acquire(db, "scheduler", "a", 0.6)
    assert not coordination.acquire(db, "scheduler", "b", 0.6), "a holds it"
    assert coordination.acquire(db, "scheduler", "a", 0.6), "renewed by its holder"
    assert coordination.holder_of(db, "scheduler")[0] == "a"
    time.sleep(0.8)
    assert coordination.acquire(db, "scheduler", "b", 5), "expired: b takes it"
    assert not coordination.acquire(db, "scheduler", "a", 5)
    assert not coordination.release(db, "scheduler", "a"), "not a's to release"
    assert coordination.release(db, "scheduler", "b")
    assert coordination.acquire(db, "scheduler", "a", 5), "released: free at once"
    assert coordination.take_over(db, "scheduler", "a", "c", 5)
    assert not coordination.take_over(db, "scheduler", "a", "d", 5), "a no longer holds it"


def test_lease_race_has_one_winner(db) -> None:
    wins: list[str] = []

    def contend(name: str) -> None:
        if coordination.acquire(db, "race", name, 30):
            wins.append(name)

    threads = [threading.Thread(target=contend, args=(f"h{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and coordination.holder_of(db, "race")[0] == wins[0]


def test_gallery_counter_moves_with_each_gallery_change(deploy, photos) -> None:
    from monitor.services.gallery import add_paths, remove

    ws = Workspace(load_settings(deploy / "config.toml"))
    start = coordination.value(ws.db, coordination.GALLERY)
    for name in ("astronaut", "coffee"):
        photos[name].save(deploy / f"{name}.png")
    added = add_paths(ws, [str(deploy / "astronaut.png"), str(deploy / "coffee.png")], "p")
    after_add = coordination.value(ws.db, coordination.GALLERY)
    assert after_add > start
    remove(ws, [str(added[0].gallery_id)])
    after_remove = coordination.value(ws.db, coordination.GALLERY)
    assert after_remove > after_add
    remove(ws, [str(added[1].gallery_id)])
    assert coordination.value(ws.db, coordination.GALLERY) > after_remove
    assert ws.live_ids().tolist() == []
    ws.db.dispose()


def test_a_message_delivered_twice_leases_once(db) -> None:
    job = queue.enqueue(db, "submission", url="https://example.org/a.jpg").job
    first = dispatch.lease_job(db, job.id, 30)
    assert first is not None and first.status == "running" and first.attempts == 1
    assert dispatch.lease_job(db, job.id, 30) is None, "a duplicate message runs nothing"
    assert queue.complete(db, first, None)
    assert dispatch.lease_job(db, job.id, 30) is None, "done stays done"
    assert dispatch.lease_job(db, "0" * 32, 30) is None, "unknown id"


def test_retry_not_leased_before_its_backoff(db) -> None:
    job = queue.enqueue(db, "submission", url="https://example.org/b.jpg").job
    leased = dispatch.lease_job(db, job.id, 30)
    assert queue.fail(db, leased, "boom", max_attempts=3, backoff=60) == "queued"
    assert dispatch.lease_job(db, job.id, 30) is None, "not due for 60 s"


def test_sweep_requeues_expired_and_resends_stale(deploy) -> None:
    (deploy / "config.toml").write_text("[queue]\nsweep_after = 30\n")
    ws = Workspace(load_settings(deploy / "config.toml"))
    db = ws.db
    dead = queue.enqueue(db, "submission", url="https://example.org/dead.jpg").job
    stale = queue.enqueue(db, "submission", url="https://example.org/stale.jpg").job
    fresh = queue.enqueue(db, "submission", url="https://example.org/fresh.jpg").job
    leased = dispatch.lease_job(db, dead.id, 30)
    past = utcnow() - timedelta(seconds=120)
    with Session(db) as s:
        s.execute(update(Job).where(Job.id == leased.id).values(lease_until=past))
        s.execute(update(Job).where(Job.id == stale.id).values(updated_at=past))
        s.commit()
    woken = threading.Event()
    swept = sweep(ws, Dispatcher(None, woken))
    assert swept.recovered == 1 and swept.resent == 2 and woken.is_set()
    assert queue.get(db, dead.id).status == "queued"
    assert dispatch.stale(db, 30) == [], "sent jobs wait another sweep_after"
    assert queue.get(db, fresh.id).status == "queued"
    again = sweep(ws, Dispatcher(None, threading.Event()))
    assert again.recovered == 0 and again.resent == 0
    db.dispose()
