"""Recorder: new violations go to the outbox once; reviewed places stay quiet."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from sqlmodel import select

from monitor.config import load_settings
from monitor.services.check import CandidateInput, check_items
from monitor.services.gallery import add_paths
from monitor.services.workspace import Workspace
from monitor.store.models import Alert, Violation
from tests.conftest import encode


def _ws(deploy: Path, photos) -> Workspace:
    (deploy / "config.toml").write_text(
        '[smtp]\nhost = "127.0.0.1"\nrecipients = ["owner@example.org"]\n'
        '[alerts]\nwebhook_url = "http://127.0.0.1:9/hook"\n')
    ws = Workspace(load_settings())
    (deploy / "g").mkdir()
    photos["astronaut"].save(deploy / "g" / "astronaut.png")
    add_paths(ws, [str(deploy / "g")], "c")
    return ws


def _copy(photos, box) -> bytes:
    return encode(photos["astronaut"].crop(box).transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def test_outbox_once_and_dismissed_place_stays_quiet(deploy: Path, photos) -> None:
    ws = _ws(deploy, photos)
    url = "https://shop.example/p/1.jpg"
    first = CandidateInput(url, data=_copy(photos, (40, 40, 460, 460)), http_status=200,
                           headers={"content-type": "image/jpeg"}, page_url="https://shop.example/p")
    [r] = check_items(ws, [first])
    assert r.verdict.value == "violation"
    with ws.session() as s:
        kinds = sorted(a.kind for a in s.exec(select(Alert)).all())
        assert kinds == ["immediate", "webhook"]
        v = s.exec(select(Violation)).one()
        v.status = "dismissed"
        s.add(v)
        s.commit()
    again = CandidateInput(url, data=_copy(photos, (40, 40, 460, 460)))
    list(check_items(ws, [again]))  # same bytes, same place: same rows
    changed = CandidateInput(url, data=_copy(photos, (60, 30, 480, 470)))
    list(check_items(ws, [changed]))  # new bytes at the same URL: new violation, inherited
    with ws.session() as s:
        statuses = sorted(v.status for v in s.exec(select(Violation)).all())
        assert statuses == ["dismissed", "dismissed"]
        assert len(s.exec(select(Alert)).all()) == 2
    other = CandidateInput("https://other.example/x.jpg", data=_copy(photos, (60, 30, 480, 470)))
    list(check_items(ws, [other]))
    with ws.session() as s:
        assert len(s.exec(select(Alert)).all()) == 4
        assert "open" in {v.status for v in s.exec(select(Violation)).all()}
