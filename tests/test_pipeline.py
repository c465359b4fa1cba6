"""The one check pipeline: each candidate hashed once, decoded once, recorded in a fixed
number of statements; a search records nothing; a spooled upload becomes evidence by a
hard link. Real photos from scikit-image, edited copies of them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import ImageOps
from sqlalchemy import event
from sqlmodel import select

from monitor.config import load_settings
from monitor.errors import UnsupportedFormat
from monitor.services.check import CandidateInput, check_items, check_one
from monitor.services.gallery import add_paths
from monitor.services.workspace import Workspace
from monitor.store.models import Candidate, MatchRow
from tests.conftest import encode


@pytest.fixture()
def ws(deploy: Path, photos) -> Workspace:
    """A workspace whose gallery holds three photos (clip off: no weights here)."""
    (deploy / "config.toml").write_text("[clip]\nenabled = false\n")
    ws = Workspace(load_settings())
    (deploy / "g").mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        photos[name].save(deploy / "g" / f"{name}.png")
    add_paths(ws, [str(deploy / "g")], "c")
    return ws


def _inputs(photos, others) -> list[CandidateInput]:
    copies = [ImageOps.mirror(photos["astronaut"]), photos["coffee"].crop((30, 20, 560, 380)),
              photos["chelsea"].resize((225, 150))]
    unrelated = [others["camera"].convert("RGB"), others["brick"].convert("RGB")]
    return [CandidateInput(f"q/{k}.jpg", data=encode(im))
            for k, im in enumerate(copies + unrelated)]


def test_each_candidate_is_hashed_once(ws: Workspace, photos, others, monkeypatch) -> None:
    calls = []
    real = hashlib.sha256

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(hashlib, "sha256", counting)
    items = _inputs(photos, others)
    results = list(check_items(ws, items, workers=2))
    assert [r.verdict.value for r in results] == ["violation"] * 3 + ["clean"] * 2
    assert len(calls) == len(items)
    assert [r.sha256 for r in results] == [real(it.data).hexdigest() for it in items]


def test_statements_do_not_grow_with_matches(ws: Workspace, photos, others) -> None:
    """Recording one candidate costs the same statements whether it matched or not,
    beyond one INSERT per match row and per violation (no SELECT per outcome)."""
    selects: list[str] = []

    def seen(_conn, _cursor, statement, *_a) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    copy, clean = _inputs(photos, others)[0], _inputs(photos, others)[3]
    list(check_items(ws, [clean]))  # engine and indices loaded before counting
    counts = []
    for item in (clean, copy):
        selects.clear()
        event.listen(ws.db, "before_cursor_execute", seen)
        try:
            list(check_items(ws, [CandidateInput(item.location + "x", data=item.data)]))
        finally:
            event.remove(ws.db, "before_cursor_execute", seen)
        counts.append(len(selects))
    # a matched copy reads its match rows, their violations and the place's quiet reviews
    # once each: three SELECTs more than a clean image, whatever the number of matches
    assert counts[1] - counts[0] <= 3
    with ws.session() as s:
        assert s.exec(select(MatchRow)).all()


def test_search_records_nothing_and_raises_its_error(ws: Workspace, photos, others) -> None:
    item = _inputs(photos, others)[0]
    result = check_one(ws, CandidateInput("search", data=item.data), record=False)
    assert result.verdict.value == "violation" and result.candidate_id is None
    with ws.session() as s:
        assert not s.exec(select(Candidate)).all()
    with pytest.raises(UnsupportedFormat):
        check_one(ws, CandidateInput("search", data=b"<html><body>no</body></html>"),
                  record=False)


def test_spooled_upload_becomes_evidence_by_hard_link(ws: Workspace, photos, others) -> None:
    data = _inputs(photos, others)[1].data
    sha = hashlib.sha256(data).hexdigest()
    ws.blobs.put(f"uploads/{sha[:2]}/{sha}", data)
    spool = ws.blobs.local_path(f"uploads/{sha[:2]}/{sha}")
    item = CandidateInput(f"upload:{sha}", data=data, sha256=sha, spool=spool, sniffed=True)
    [result] = check_items(ws, [item])
    assert result.verdict.value == "violation"
    with ws.session() as s:
        rel = s.get(Candidate, result.candidate_id).evidence_path
    evidence = ws.data_dir / rel
    assert evidence.read_bytes() == data
    assert evidence.stat().st_ino == spool.stat().st_ino
    spool.unlink()  # the worker drops the upload once checked; the evidence stays
    assert evidence.read_bytes() == data


def test_keep_file_copies_when_the_source_is_gone(ws: Workspace, tmp_path: Path) -> None:
    gone = tmp_path / "gone.jpg"
    ws.blobs.keep("evidence/aa/x.jpg", gone, b"bytes")
    path = ws.blobs.local_path("evidence/aa/x.jpg")
    assert path.read_bytes() == b"bytes"


def test_unknown_collection_is_refused_before_reading(ws: Workspace, photos, others) -> None:
    from monitor.errors import NotFound

    with pytest.raises(NotFound, match="no collection named 'nope'"):
        list(check_items(ws, _inputs(photos, others), collection="nope"))
    with ws.session() as s:
        assert not s.exec(select(Candidate)).all()



def test_step_fires_once_per_candidate_as_it_is_matched(ws: Workspace, photos, others) -> None:
    """The CLI's progress bar advances on ``step``: once per candidate, bad ones included,
    before the chunk's results are yielded."""
    import threading

    items = _inputs(photos, others) + [CandidateInput("q/bad.jpg", data=b"not an image")]
    steps: list[int] = []
    lock = threading.Lock()

    def step() -> None:
        with lock:
            steps.append(1)

    seen_before_first, verdicts = [], []
    for result in check_items(ws, items, workers=2, step=step):
        if not verdicts:
            seen_before_first.append(len(steps))
        verdicts.append(result.verdict.value)
    assert len(steps) == len(items) and seen_before_first == [len(items)]
    assert verdicts[-1] == "error"
