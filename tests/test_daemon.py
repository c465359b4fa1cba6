"""``monitor serve`` as a real process: SIGKILL mid-queue and restart, SIGTERM, schedules."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlmodel import Session

from bench.cluster import Role
from monitor.config import load_settings
from monitor.outcome.signing import signed_headers
from monitor.services.gallery import add_paths
from monitor.services.workspace import Workspace
from monitor.store.models import Candidate, Job, Violation
from tests.conftest import encode, skimage_photo

SECRET = "daemon-secret-3f9c1e7a5b2d8f4c6e0a9b1d7c3e5f2a8b4d6c0e9f1a3b5c7d2e4f6a8b0c1d3e"
GALLERY = ("astronaut", "coffee", "chelsea", "rocket")
CONFIG = """
[clip]
enabled = false
[local]
enabled = false
[server]
port = 0
workers = 1
webhook_secret_file = "secret.txt"
[[sources]]
name = "nightly"
kind = "folder"
location = "nightly"
interval = 3600
[[sources]]
name = "quick"
kind = "folder"
location = "drop"
interval = 1
"""


class Serve(Role):
    """A ``monitor serve`` subprocess in ``root`` with its stderr collected."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, ["serve"], r"listening on http://")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(30)


@pytest.fixture
def site(deploy: Path) -> Path:
    (deploy / "config.toml").write_text(CONFIG)
    (deploy / "secret.txt").write_text(SECRET)
    ws = Workspace(load_settings(deploy / "config.toml"))
    for folder in ("gallery", "nightly", "drop"):
        (deploy / folder).mkdir()
    for name in GALLERY:
        skimage_photo(name).save(deploy / "gallery" / f"{name}.png")
    add_paths(ws, [str(deploy / "gallery")], "portfolio")
    skimage_photo("coffee").resize((200, 133)).save(deploy / "drop" / "coffee-small.jpg")
    skimage_photo("coins").save(deploy / "drop" / "coins.png")
    ws.db.dispose()
    return deploy


def copies(n: int) -> list[bytes]:
    """``n`` distinct edited copies of gallery photos (different sizes and qualities)."""
    out = []
    for i in range(n):
        im = skimage_photo(GALLERY[i % len(GALLERY)])
        side = 160 + 7 * i
        out.append(encode(im.resize((side, side * im.height // im.width)), "JPEG",
                          quality=60 + i % 30))
    return out


def submit(url: str, data: bytes) -> httpx.Response:
    for _ in range(20):  # signed afresh each time: a nonce is accepted once
        headers = {"Content-Type": "image/jpeg",
                   **signed_headers(SECRET, "POST", f"{url}/v1/submissions", data)}
        r = httpx.post(f"{url}/v1/submissions", content=data, headers=headers, timeout=30)
        if r.status_code != 429:
            return r
        time.sleep(float(r.headers["retry-after"]))
    return r


def job_counts(db) -> dict[str, int]:
    with Session(db) as s:
        return dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())


def next_runs(db) -> dict[str, float]:
    with db.connect() as c:
        return dict(c.execute(text("SELECT id, next_run_time FROM apscheduler_jobs")).all())


def test_kill_restart_checks_every_submission_once(site: Path) -> None:
    db = create_engine(load_settings(site / "config.toml").database_url)
    payloads = copies(48)
    first = Serve(site)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda d: submit(first.url, d), payloads + payloads[:8]))
    assert all(r.status_code == 202 for r in answers), [r.text for r in answers][:3]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 48, "re-sent copies return the first submission"
    deadline = time.monotonic() + 30
    while job_counts(db).get("done", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.proc.kill()  # SIGKILL mid-queue
    first.proc.wait(10)
    counts = job_counts(db)
    assert 0 < counts.get("done", 0) and counts.get("queued", 0) + counts.get("running", 0) > 0
    runs_before = next_runs(db)
    assert "source:nightly" in runs_before and "source:quick" in runs_before

    second = Serve(site)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with Session(db) as s:
            left = s.execute(select(func.count()).select_from(Job).where(
                Job.id.in_(ids), Job.status != "done")).scalar_one()
        if not left:
            break
        time.sleep(0.2)
    assert left == 0, "".join(second.lines[-20:])
    health = httpx.get(f"{second.url}/healthz").json()
    assert health["scheduler"]["ok"] and health["workers"]["alive"] == 1
    time.sleep(2.5)  # let the 1 s folder source run at least once
    assert second.stop(signal.SIGTERM) == 0, "".join(second.lines[-20:])
    assert any("stopped" in line for line in second.lines)

    with Session(db) as s:
        uploads = s.execute(select(Candidate).where(Candidate.source.like("upload:%"))).all()
        assert len(uploads) == 48, "one candidate per accepted submission"
        assert all(c.status == "checked" for (c,) in uploads)
        assert all(c.verdict == "violation" for (c,) in uploads)
        dup = s.execute(select(Violation.candidate_id, Violation.protected_id, func.count())
                        .group_by(Violation.candidate_id, Violation.protected_id)
                        .having(func.count() > 1)).all()
        assert dup == [], "no duplicated violations after the kill"
        cids = {c.id for (c,) in uploads}
        flagged = s.execute(select(func.count(func.distinct(Violation.candidate_id))).where(
            Violation.candidate_id.in_(cids))).scalar_one()
        assert flagged == 48
        quick = s.execute(select(Candidate.source, Candidate.verdict).where(
            Candidate.source_name == "quick")).all()
        assert {Path(p).name: v for p, v in quick} == {"coffee-small.jpg": "violation",
                                                       "coins.png": "clean"}
    assert next_runs(db)["source:nightly"] == runs_before["source:nightly"], \
        "the persisted schedule survived both restarts"
    db.dispose()
