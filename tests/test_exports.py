"""JSON/CSV exports, digest-period reports, evidence links, takedown drafts, template overrides."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from monitor.cli import app
from monitor.errors import ConfigError
from monitor.outcome.exports import COLUMNS
from monitor.outcome.report import write_report
from monitor.outcome.takedown import render_takedown
from monitor.store.models import Candidate, MatchRow, ProtectedImage, Violation, utcnow
from tests.violations_data import HEADERS, make_ws, populate


@pytest.fixture
def ws(deploy: Path, photos, others):
    w = make_ws(deploy, photos)
    populate(w, photos, others)
    return w


def db_rows(ws) -> dict[int, tuple[Violation, Candidate, ProtectedImage, MatchRow]]:
    with ws.session() as s:
        rows = s.exec(select(Violation, Candidate, ProtectedImage, MatchRow)
                      .join(Candidate, Violation.candidate_id == Candidate.id)
                      .join(ProtectedImage, Violation.protected_id == ProtectedImage.id)
                      .join(MatchRow, Violation.match_id == MatchRow.id)).all()
    return {v.id: (v, c, p, m) for v, c, p, m in rows}


def test_dense_agreement_recorded_and_exported(tmp_path: Path, photos, others,
                                               monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ws = make_ws(tmp_path, photos, local=True)
    populate(ws, photos, others)
    with ws.session() as s:
        matches = s.exec(select(MatchRow)).all()
    assert matches and all(m.agreement is not None and 0.7 <= m.agreement <= 1.0
                           for m in matches if m.inliers is not None)
    doc = json.loads(write_report(ws, format="json", out=tmp_path / "v.json").read_text())
    by_id = {m.id: m.agreement for m in matches}
    assert sorted(r["agreement"] for r in doc["items"]) == sorted(
        by_id[m_id] for m_id in _match_ids(ws))


def _match_ids(ws) -> list[int]:
    with ws.session() as s:
        return [v.match_id for v in s.exec(select(Violation)).all()]


def test_json_export_matches_the_database(ws, tmp_path: Path) -> None:
    path = write_report(ws, format="json", out=tmp_path / "v.json")
    doc = json.loads(path.read_text())
    db = db_rows(ws)
    assert doc["count"] == len(db) == 3 and len(doc["items"]) == 3
    for row in doc["items"]:
        v, c, p, m = db[row["violation_id"]]
        assert list(row) == list(COLUMNS)
        assert (row["status"], row["verdict"], row["rule"], row["severity"]) == (
            v.status, v.verdict, v.rule, v.severity)
        assert (row["source"], row["page_url"], row["candidate_sha256"]) == (
            c.source, c.page_url, c.sha256)
        assert (row["protected_sha256"], row["protected_path"]) == (p.sha256, p.path)
        assert (row["http_status"], row["distance"], row["score"]) == (
            c.http_status, m.distance, m.score)
        assert row["agreement"] == m.agreement  # None here: the local stage is off
        assert row["headers"] == (json.loads(c.headers_json) if c.headers_json else None)
        assert Path(row["evidence_file"]) == ws.data_dir / c.evidence_path
        assert hashlib.sha256(Path(row["evidence_file"]).read_bytes()).hexdigest() == c.sha256
    by_source = {r["source"]: r for r in doc["items"]}
    assert by_source["https://pirate.example/img/astro.jpg"]["headers"] == HEADERS
    assert by_source["https://copycat.example/c.jpg"]["http_status"] is None
    assert by_source["https://pirate.example/img/astro.jpg"]["host"] == "pirate.example"


def test_csv_export_matches_json_and_filters(ws, tmp_path: Path) -> None:
    from monitor.services.review import set_status

    set_status(ws, 2, "dismissed", "alice")
    js = json.loads(write_report(ws, format="json", out=tmp_path / "a.json").read_text())
    text = write_report(ws, format="csv", out=tmp_path / "a.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert text.splitlines()[0].split(",") == list(COLUMNS)
    assert [int(r["violation_id"]) for r in rows] == [r["violation_id"] for r in js["items"]]
    for r, j in zip(rows, js["items"], strict=True):
        assert r["candidate_sha256"] == j["candidate_sha256"] and r["source"] == j["source"]
        assert (json.loads(r["headers"]) if r["headers"] else None) == j["headers"]
        assert r["http_status"] == ("" if j["http_status"] is None else str(j["http_status"]))
        assert float(r["score"]) == j["score"]
    only_open = json.loads(write_report(ws, format="json", status=["open"],
                                        out=tmp_path / "o.json").read_text())
    assert sorted(i["violation_id"] for i in only_open["items"]) == [1, 3]
    assert only_open["filters"] == {"status": "open"}
    none = json.loads(write_report(ws, format="json", severity=["low"],
                                   out=tmp_path / "n.json").read_text())
    assert none["count"] == 0
    with pytest.raises(ValueError, match="html, json, csv"):
        write_report(ws, format="pdf")


def test_digest_period_filter_and_html_evidence(ws) -> None:
    now = utcnow()
    with ws.session() as s:
        v = s.get(Violation, 2)
        v.created_at = now - timedelta(days=3)
        s.add(v)
        s.commit()
    path = write_report(ws, since=now - timedelta(days=1), until=now + timedelta(minutes=1))
    html = path.read_text()
    assert sorted(map(int, re.findall(r'id="violation-(\d+)"', html))) == [1, 3]
    assert "Image monitoring digest" in html and "Violations flagged from" in html
    older = write_report(ws, format="json", until=now - timedelta(days=1))
    assert [i["violation_id"] for i in json.loads(older.read_text())["items"]] == [2]
    # HTTP status and headers at fetch, and a working relative link to the evidence copy
    db = db_rows(ws)
    start = html.index('id="violation-1"')  # up to the next violation, whatever the order
    nxt = html.find('id="violation-', start + 1)
    art = html[start:nxt if nxt > 0 else None]
    assert 'class="http-status">200<' in art
    for k, val in HEADERS.items():
        assert f"<code>{k}</code>" in art and f"<code>{val}</code>" in art
    href = re.search(r'class="evidence-link" href="([^"]+)"', art).group(1)
    target = (path.parent / unquote(href)).resolve()
    assert not href.startswith(("/", "file:")) and target.is_file()
    assert hashlib.sha256(target.read_bytes()).hexdigest() == db[1][1].sha256


def test_takedown_draft_has_both_hashes_urls_and_the_512_elements(ws, tmp_path: Path) -> None:
    db = db_rows(ws)
    v, c, p, _ = db[1]
    text = render_takedown(ws, 1)
    for needle in (c.sha256, p.sha256, c.source, c.page_url, "pirate.example",
                   "17 U.S.C. § 512(c)(3)", "good faith belief", "penalty of perjury",
                   "[your full name]", "pHash Hamming distance"):
        assert needle in text, needle
    for element in ("(i)", "(ii)", "(iii)", "(iv)", "(v)", "(vi)"):
        assert element in text
    # an abuse desk gets public addresses and plain words; figures go to the appendix
    assert p.stored_path not in text and str(Path(p.path).parent) not in text
    assert f"File:             {Path(p.path).name}" in text
    body, appendix = text.split("Appendix: technical evidence")
    assert "is a copy of the work above" in body and "pHash Hamming distance" not in body
    assert "pHash Hamming distance" in appendix and p.sha256 in appendix
    res = CliRunner().invoke(app, ["violations", "takedown", "1", "--out",
                                   str(tmp_path / "n.txt")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "n.txt").read_text() == text
    res = CliRunner().invoke(app, ["violations", "takedown", "1"])
    assert c.sha256 in res.stdout and p.sha256 in res.stdout
    assert CliRunner().invoke(app, ["violations", "takedown", "42"]).exit_code == 2


def test_user_templates_override_the_package(deploy: Path, photos, others) -> None:
    (deploy / "my-templates").mkdir()
    (deploy / "my-templates" / "takedown.txt.j2").write_text(
        "CUSTOM NOTICE for {{ item.source }} / {{ item.candidate_sha256 }}\n")
    (deploy / "my-templates" / "report.html.j2").write_text(
        "<html><body>MY REPORT {{ rows|length }}</body></html>")
    ws = make_ws(deploy, photos, templates_dir="my-templates")
    populate(ws, photos, others)
    db = db_rows(ws)
    assert render_takedown(ws, 1) == (
        f"CUSTOM NOTICE for {db[1][1].source} / {db[1][1].sha256}\n")
    assert write_report(ws).read_text() == "<html><body>MY REPORT 3</body></html>"
    # templates not overridden still come from the package
    from monitor.outcome.templating import environment

    mail = environment(ws.settings).get_template("mail.html.j2")
    assert Path(mail.filename).parent.name == "templates" and "my-templates" not in mail.filename
    (deploy / "my-templates" / "takedown.txt.j2").write_text("{{ item.no_such_field }}")
    with pytest.raises(ConfigError, match="takedown.txt.j2"):
        render_takedown(ws, 1)
