"""Review workflow: status changes with an audit trail, the licensed allow-list, the CLI."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from monitor.cli import app
from monitor.errors import NotFound, RuleError
from monitor.matching.rules import load_rules
from monitor.outcome.items import as_utc
from monitor.services.review import InvalidStatus, history, set_status
from monitor.store.models import Alert, Violation, utcnow
from tests.violations_data import copy_of, make_ws, populate, record


@pytest.fixture
def ws(deploy: Path, photos, others):
    w = make_ws(deploy, photos)
    populate(w, photos, others)
    return w


def test_set_status_records_who_when_from_to_and_note(ws) -> None:
    before = utcnow()
    v = set_status(ws, 1, "confirmed", "alice", "clear copy")
    v = set_status(ws, 1, "Dismissed ", "bob", "fair use: review")
    assert (v.status, v.note) == ("dismissed", "fair use: review")
    trail = history(ws, 1)
    assert [(e.actor, e.from_status, e.to_status, e.note) for e in trail] == [
        ("alice", "open", "confirmed", "clear copy"),
        ("bob", "confirmed", "dismissed", "fair use: review")]
    assert all(before <= as_utc(e.at) <= utcnow() for e in trail)
    with ws.session() as s:
        assert s.get(Violation, 1).status == "dismissed"
        assert s.get(Violation, 2).status == "open"
    assert history(ws, 2) == []


def test_unknown_status_and_id_are_clear_errors(ws) -> None:
    with pytest.raises(InvalidStatus) as err:
        set_status(ws, 1, "resolved", "alice")
    for allowed in ("open", "confirmed", "dismissed", "licensed"):
        assert allowed in str(err.value)
    with pytest.raises(NotFound, match="violation 999"):
        set_status(ws, 999, "confirmed", "alice")
    with pytest.raises(InvalidStatus, match="licensed"):
        set_status(ws, 1, "dismissed", "alice", allow_domain=True)
    assert history(ws, 1) == []


def test_licensed_place_stays_quiet_for_new_bytes(ws, photos) -> None:
    set_status(ws, 1, "licensed", "alice", "invoice 42")
    url = "https://pirate.example/img/astro.jpg"
    r = record(ws, url, copy_of(photos["astronaut"], 0.6, 1.3))
    assert r.verdict.value == "violation"
    with ws.session() as s:
        newest = s.exec(select(Violation).order_by(Violation.id.desc())).first()
        assert newest.id != 1 and newest.status == "licensed"
        assert s.exec(select(Alert).where(Alert.violation_id == newest.id)).all() == []


def test_allow_domain_writes_a_valid_licensed_rule(ws, deploy: Path) -> None:
    rules_dir = deploy / "rules"
    assert not rules_dir.exists() or not list(rules_dir.glob("*.toml"))
    set_status(ws, 1, "licensed", "alice", "licence by e-mail", allow_domain=True)
    path = rules_dir / "licensed.toml"
    data = tomllib.loads(path.read_text())
    [rule] = [r for r in data["rule"] if r["name"] == "licensed-domains"]
    assert rule["allow_domains"] == ["pirate.example"]
    # the packaged defaults were copied first, so they stay in force
    names = [r.name for r in load_rules(rules_dir)]
    assert "copy" in names and "licensed-domains" in names
    # a user rule already in the file is kept; a second host is merged, sorted, once
    path.write_text(path.read_text() + '\n[[rule]]\nname = "mine"\nverdict = "review"\n'
                    "clip_min_cosine = 0.99\n")
    set_status(ws, 3, "licensed", "alice", allow_domain=True)
    set_status(ws, 1, "licensed", "alice", allow_domain=True)
    data = tomllib.loads(path.read_text())
    assert {r["name"] for r in data["rule"]} == {"licensed-domains", "mine"}
    [rule] = [r for r in data["rule"] if r["name"] == "licensed-domains"]
    assert rule["allow_domains"] == ["copycat.example", "pirate.example"]
    assert [e.to_status for e in history(ws, 3)] == ["licensed"]


def test_allow_domain_refused_for_files_and_invalid_rule_file(ws, deploy: Path, photos) -> None:
    local = deploy / "upload.jpg"
    local.write_bytes(copy_of(photos["coffee"], 0.5))
    from monitor.services.check import check

    [r] = check(ws, [str(local)])
    assert r.verdict.value == "violation"
    with ws.session() as s:
        vid = s.exec(select(Violation).order_by(Violation.id.desc())).first().id
    with pytest.raises(RuleError, match="no web host"):
        set_status(ws, vid, "licensed", "alice", allow_domain=True)
    (deploy / "rules").mkdir(exist_ok=True)
    (deploy / "rules" / "licensed.toml").write_text("[[rule]]\nname = 'x'\nverdict = 'nope'\n")
    with pytest.raises(RuleError, match="verdict"):
        set_status(ws, 1, "licensed", "alice", allow_domain=True)
    with ws.session() as s:  # nothing half-done: status unchanged, no event
        assert s.get(Violation, 1).status == "open"
    assert history(ws, 1) == []


def test_allow_listed_domain_is_allowed_elsewhere_on_the_host(ws, photos) -> None:
    set_status(ws, 1, "licensed", "alice", allow_domain=True)
    ws.__dict__.pop("rules", None)
    r = record(ws, "https://cdn.pirate.example/other/astro2.jpg",
               copy_of(photos["astronaut"], 0.4, 1.0))
    assert r.verdict.value == "allowed"


def test_cli_list_show_set_status(ws) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["violations", "list", "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["violation_id"] for r in rows] == [3, 2, 1]
    assert rows[-1]["source"] == "https://pirate.example/img/astro.jpg"
    res = runner.invoke(app, ["violations", "set-status", "2", "confirmed", "--note",
                              "reported", "--actor", "carol"])
    assert res.exit_code == 0 and "violation 2: confirmed" in res.stdout
    res = runner.invoke(app, ["violations", "list", "--status", "confirmed", "--format",
                              "jsonl"])
    assert [json.loads(line)["violation_id"] for line in res.stdout.splitlines()] == [2]
    res = runner.invoke(app, ["violations", "show", "2"])
    assert res.exit_code == 0, res.output
    for words in ("carol", "reported", "confirmed", "https://pirate.example/img/cat.jpg",
                  "evidence", "200"):
        assert words in res.stdout, words
    res = runner.invoke(app, ["violations", "set-status", "2", "fixed"])
    assert res.exit_code == 2
    assert "allowed: open, confirmed, dismissed, licensed" in " ".join(res.output.split())
    res = runner.invoke(app, ["violations", "show", "99"])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(app, ["violations", "list"])
    assert res.exit_code == 0 and "3 item(s)" in res.output and "open" in res.stdout


def test_same_image_through_another_intake_joins_the_open_violation(ws, photos) -> None:
    """The bytes of a confirmed violation sent again as an upload (another intake, another
    candidate) join that violation: no second violation, no second alert, the review
    state kept, and the trail says where it was seen again (issue 20)."""
    data = copy_of(photos["astronaut"])  # the same bytes populate() found on pirate.example
    set_status(ws, 1, "confirmed", "alice", "clear copy")
    with ws.session() as s:
        before = len(s.exec(select(Violation)).all())
        alerts = len(s.exec(select(Alert)).all())
    r = record(ws, "upload:from-the-api", data, page="https://other.example/shop.html")
    assert r.verdict.value == "violation"
    with ws.session() as s:
        assert len(s.exec(select(Violation)).all()) == before
        assert len(s.exec(select(Alert)).all()) == alerts
        assert s.get(Violation, 1).status == "confirmed"
    last = history(ws, 1)[-1]
    assert (last.actor, last.from_status, last.to_status) == ("monitor", "confirmed",
                                                              "confirmed")
    assert "upload:from-the-api" in last.note and "other.example/shop.html" in last.note
    other = record(ws, "https://elsewhere.example/a.jpg", copy_of(photos["astronaut"], 0.65))
    with ws.session() as s:
        assert len(s.exec(select(Violation)).all()) == before + 1, "new bytes: new violation"
    assert other.verdict.value == "violation"


def test_report_lists_every_protected_image_a_found_image_reproduces(ws, photos,
                                                                    deploy: Path) -> None:
    """One artwork registered twice (two collections): a copy of it is one found image
    with two violations; the report says so and lists each under the other (issue 20:
    "55 violations for 54 images" with no explanation)."""
    from monitor.outcome.report import write_report
    from monitor.services.gallery import add_paths

    photos["rocket"].save(deploy / "rocket.png")
    for collection in ("portfolio", "prints"):
        assert add_paths(ws, [str(deploy / "rocket.png")], collection)[0].status == "added"
    r = record(ws, "https://pirate.example/r.jpg", copy_of(photos["rocket"]))
    assert r.verdict.value == "violation"
    with ws.session() as s:
        cand = s.exec(select(Violation).order_by(Violation.id.desc())).first().candidate_id
        ids = sorted(v.id for v in s.exec(select(Violation).where(
            Violation.candidate_id == cand)).all())
    assert len(ids) == 2, "one violation per protected image"
    html = write_report(ws).read_text()
    assert 'id="per-image-note"' in html
    first = html.index(f'id="violation-{ids[0]}"')
    second = html.index(f'id="violation-{ids[1]}"')
    assert f'href="#violation-{ids[1]}"' in html[first:second], "the first lists the second"
    assert f'href="#violation-{ids[0]}"' in html[second:], "and the second the first"
