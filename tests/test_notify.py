"""E-mail alerts and digests delivered to a real SMTP server on loopback (aiosmtpd).

Received bytes are parsed back with the standard ``email`` package and compared
with the database: subject, recipients, both alternatives, the inline JPEG
parts and their ``cid:`` references, the links.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import shutil
import subprocess
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import numpy as np
import pytest
from aiosmtpd.smtp import AuthResult
from PIL import Image
from sqlmodel import select

from monitor.outcome.items import as_utc, query_items
from monitor.outcome.notify import send_digest, send_pending_alerts
from monitor.outcome.thumbs import MARK_COLOUR
from monitor.services.review import set_status
from monitor.store.models import Alert, Candidate, Violation, utcnow
from tests.violations_data import (
    RECIPIENTS,
    Sink,
    copy_of,
    free_port,
    make_ws,
    populate,
    record,
    start_smtp,
)


@pytest.fixture
def smtp():
    """(port, sink) of a running loopback SMTP server."""
    port, sink = free_port(), Sink()
    controller = start_smtp(port, sink)
    yield port, sink
    controller.stop()


def parse(envelope) -> EmailMessage:
    return email.message_from_bytes(envelope.original_content, policy=email.policy.default)


def parts(msg: EmailMessage) -> tuple[str, str, dict[str, Image.Image]]:
    """(plain text, html, {content-id without brackets: decoded image}) of a message."""
    assert msg.get_content_type() == "multipart/alternative"
    plain, related = msg.get_payload()
    assert plain.get_content_type() == "text/plain"
    if related.get_content_type() == "text/html":  # no images: no multipart/related wrapper
        return plain.get_content(), related.get_content(), {}
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    assert html_part.get_content_type() == "text/html"
    decoded = {}
    for part in images:
        assert part.get_content_type() == "image/jpeg"
        assert part.get_content_disposition() == "inline"
        im = Image.open(io.BytesIO(part.get_content()))
        assert im.format == "JPEG"
        im.load()
        decoded[part["Content-ID"].strip("<>")] = im.convert("RGB")
    return plain.get_content(), html_part.get_content(), decoded


def similar(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference (0-255) after resizing ``b`` to ``a``."""
    return float(np.abs(np.asarray(a, float) - np.asarray(b.resize(a.size), float)).mean())


def test_immediate_alert_is_delivered_once_with_inline_images(deploy: Path, photos, others,
                                                              smtp) -> None:
    port, sink = smtp
    ws = make_ws(deploy, photos, port=port)
    populate(ws, photos, others)
    assert send_pending_alerts(ws) == 3
    assert len(sink.envelopes) == 3
    with ws.session() as s:
        alerts = s.exec(select(Alert).where(Alert.kind == "immediate")).all()
        items = {i.violation_id: i for i in query_items(s)}
    assert {(a.status, a.attempts, a.error) for a in alerts} == {("sent", 1, None)}
    assert all(a.sent_at is not None for a in alerts)
    [env] = [e for e in sink.envelopes if "violation #1 " in parse(e)["Subject"]]
    subject = parse(env)["Subject"]
    item = items[1]
    assert subject.startswith("[monitor] violation #1 (high): ")
    assert subject.endswith("found at pirate.example")
    assert sorted(env.rcpt_tos) == sorted(RECIPIENTS) and env.mail_from == "monitor@example.net"
    msg = parse(env)
    assert msg["To"].addresses[0].addr_spec in RECIPIENTS and len(msg["To"].addresses) == 2
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Message-ID"]
    plain, html, images = parts(msg)
    for text in (plain, html):
        assert item.source in text and item.page_url in text
        assert item.candidate_sha256 in text and item.protected_sha256 in text
    assert '<a href="https://pirate.example/img/astro.jpg">' in html
    assert '<a href="https://pirate.example/gallery.html">' in html
    cids = re.findall(r'src="cid:([^"]+)"', html)
    assert len(cids) == 2 and set(cids) == set(images), (cids, list(images))
    kinds = dict(re.findall(r'data-kind="(\w+)" src="cid:([^"]+)"', html))
    protected = images[kinds["protected"]]
    assert max(protected.size) <= 320
    assert similar(protected, photos["astronaut"]) < 12, "inline protected image is the original"
    assert similar(images[kinds["found"]], photos["astronaut"]) < 30
    assert similar(images[kinds["found"]], photos["coffee"]) > 40
    # never alerted twice: a second drain and a re-check of the same bytes send nothing
    assert send_pending_alerts(ws) == 0
    record(ws, item.source, copy_of(photos["astronaut"]), page=item.page_url)
    assert send_pending_alerts(ws) == 0 and len(sink.envelopes) == 3
    with ws.session() as s:
        assert len(s.exec(select(Alert).where(Alert.kind == "immediate")).all()) == 3


def test_matched_region_is_drawn_in_the_mailed_found_image(deploy: Path, photos, smtp) -> None:
    """A crop caught by the local stage: its quadrilateral is outlined in the found thumbnail."""
    port, sink = smtp
    ws = make_ws(deploy, photos, port=port, local=True)
    crop = photos["astronaut"].crop((60, 20, 470, 400))
    canvas = Image.new("RGB", (800, 600), (40, 90, 40))
    canvas.paste(crop, (300, 150))
    r = record(ws, "https://meme.example/m.jpg", copy_of(canvas, 1.0, 1.0))
    assert r.verdict.value == "violation", r
    assert send_pending_alerts(ws) == 1
    _, html, images = parts(parse(sink.envelopes[0]))
    kinds = dict(re.findall(r'data-kind="(\w+)" src="cid:([^"]+)"', html))
    found = np.asarray(images[kinds["found"]], float)
    mask = np.linalg.norm(found - np.array(MARK_COLOUR, float), axis=-1) < 70
    assert mask.sum() > 200, "outline colour present"
    ys, xs = np.nonzero(mask)
    scale = found.shape[1] / 800
    # the outline is the protected image's frame projected into the found image: the
    # 512 px astronaut cropped at (60, 20) and pasted at (300, 150) spans x 240-752,
    # y 130-642 (clipped at the bottom edge, 600)
    assert abs(xs.min() / scale - 240) < 25 and abs(xs.max() / scale - 752) < 25
    assert abs(ys.min() / scale - 130) < 25 and ys.max() / scale > 580
    assert not mask[:int(100 * scale), :int(200 * scale)].any()
    assert not mask[int(250 * scale):int(450 * scale), int(400 * scale):int(600 * scale)].any()


def test_server_down_is_retried_with_backoff_then_failed(deploy: Path, photos, others) -> None:
    ws = make_ws(deploy, photos, port=free_port(),
                 extra="[alerts]\nretries = 3\nbackoff = 10\n")
    populate(ws, photos, others)
    t0 = utcnow()
    assert send_pending_alerts(ws, t0) == 0
    with ws.session() as s:
        alerts = s.exec(select(Alert).where(Alert.kind == "immediate")).all()
    assert {a.status for a in alerts} == {"pending"} and {a.attempts for a in alerts} == {1}
    assert all("ConnectionRefusedError" in a.error for a in alerts), alerts[0].error
    assert {as_utc(a.next_attempt_at) for a in alerts} == {t0 + timedelta(seconds=10)}
    assert send_pending_alerts(ws, t0 + timedelta(seconds=5)) == 0  # not due yet
    with ws.session() as s:
        assert {a.attempts for a in s.exec(select(Alert)).all() if a.kind == "immediate"} == {1}
    t1 = t0 + timedelta(seconds=11)
    send_pending_alerts(ws, t1)
    with ws.session() as s:
        alerts = s.exec(select(Alert).where(Alert.kind == "immediate")).all()
    assert {a.attempts for a in alerts} == {2}
    assert {as_utc(a.next_attempt_at) for a in alerts} == {t1 + timedelta(seconds=20)}
    send_pending_alerts(ws, t1 + timedelta(seconds=21))
    with ws.session() as s:
        alerts = s.exec(select(Alert).where(Alert.kind == "immediate")).all()
    assert {(a.status, a.attempts, a.next_attempt_at) for a in alerts} == {("failed", 3, None)}
    assert send_pending_alerts(ws, t1 + timedelta(days=1)) == 0


def test_rejected_message_is_retried_and_then_delivered_once(deploy: Path, photos, others,
                                                           smtp) -> None:
    port, sink = smtp
    ws = make_ws(deploy, photos, port=port, extra="[alerts]\nbackoff = 30\n")
    populate(ws, photos, others)
    sink.reject = "554 5.7.1 Message rejected as spam"
    t0 = utcnow()
    assert send_pending_alerts(ws, t0) == 0
    with ws.session() as s:
        alerts = s.exec(select(Alert).where(Alert.kind == "immediate")).all()
    assert all("554" in a.error and "rejected as spam" in a.error for a in alerts)
    assert {(a.status, a.attempts) for a in alerts} == {("pending", 1)}
    sink.reject = None
    assert send_pending_alerts(ws, t0 + timedelta(seconds=29)) == 0
    assert send_pending_alerts(ws, t0 + timedelta(seconds=31)) == 3
    assert send_pending_alerts(ws, t0 + timedelta(hours=1)) == 0
    assert len(sink.envelopes) == 3
    with ws.session() as s:
        alerts = s.exec(select(Alert).where(Alert.kind == "immediate")).all()
    assert {(a.status, a.attempts, a.error) for a in alerts} == {("sent", 2, None)}


def test_dismissed_and_licensed_violations_are_skipped(deploy: Path, photos, others,
                                                      smtp) -> None:
    port, sink = smtp
    ws = make_ws(deploy, photos, port=port)
    populate(ws, photos, others)
    set_status(ws, 1, "dismissed", "alice", "not ours")
    set_status(ws, 2, "licensed", "alice", "paid licence")
    assert send_pending_alerts(ws) == 1
    with ws.session() as s:
        state = {a.violation_id: (a.status, a.error) for a in s.exec(select(Alert)).all()}
    assert state == {1: ("skipped", "violation dismissed"), 2: ("skipped", "violation licensed"),
                     3: ("sent", None)}
    [env] = sink.envelopes
    assert "#3 " in parse(env)["Subject"]


def test_digest_lists_the_period_and_empty_digest_is_not_sent(deploy: Path, photos, others,
                                                             smtp) -> None:
    port, sink = smtp
    ws = make_ws(deploy, photos, port=port, extra="[alerts]\nimmediate = false\n")
    populate(ws, photos, others)
    now = utcnow()
    with ws.session() as s:  # one violation is older than the default 24 h period
        old = s.get(Violation, 3)
        old.created_at = now - timedelta(hours=30)
        s.add(old)
        s.commit()
    set_status(ws, 2, "dismissed", "bob")
    digest = send_digest(ws, now)
    assert digest is not None and digest.status == "sent"
    with ws.session() as s:
        row = s.get(Alert, digest.id)
        expected = query_items(s, since=now - timedelta(hours=24), until=now,
                               status=["open", "confirmed"])
        cands = {c.id: c for c in s.exec(select(Candidate)).all()}
    assert [i.violation_id for i in expected] == [1]
    assert (row.kind, row.violation_id) == ("digest", None)
    assert as_utc(row.period_start) == now - timedelta(hours=24)
    assert as_utc(row.period_end) == now
    [env] = sink.envelopes
    msg = parse(env)
    assert msg["Subject"].startswith("[monitor] digest ") and msg["Subject"].endswith(": 1 new")
    assert sorted(env.rcpt_tos) == sorted(RECIPIENTS)
    plain, html, images = parts(msg)
    listed = sorted(int(n) for n in re.findall(r'id="violation-(\d+)"', html))
    assert listed == [1]
    assert cands[1].source in plain and cands[1].source in html
    assert cands[2].source not in plain and cands[3].source not in html
    assert len(images) == 2 and set(re.findall(r'src="cid:([^"]+)"', html)) == set(images)
    report = re.search(r"Full report: (\S+)", plain).group(1)
    assert Path(report).is_file() and 'id="violation-1"' in Path(report).read_text()
    # nothing new since: no mail, no record
    assert send_digest(ws, now + timedelta(hours=24)) is None
    assert len(sink.envelopes) == 1
    with ws.session() as s:
        assert len(s.exec(select(Alert).where(Alert.kind == "digest")).all()) == 1


def test_empty_digest_sent_when_configured_and_failure_recorded(deploy: Path, photos,
                                                                smtp) -> None:
    port, sink = smtp
    ws = make_ws(deploy, photos, port=port, extra="[alerts]\ndigest_send_empty = true\n")
    digest = send_digest(ws)
    assert digest.status == "sent"
    _, html, images = parts(parse(sink.envelopes[0]))
    assert "Nothing new in this period" in html and images == {}
    sink.reject = "451 4.3.0 try later"
    failed = send_digest(ws, utcnow() + timedelta(hours=24))
    assert failed.status == "failed" and "451" in failed.error
    # the next digest starts where the last *sent* one ended
    sink.reject = None
    again = send_digest(ws, utcnow() + timedelta(hours=48))
    assert again.status == "sent"
    assert as_utc(again.period_start) == as_utc(digest.period_end)


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl CLI needed for a test cert")
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_transports_and_login(deploy: Path, photos, others, monkeypatch, security) -> None:
    """STARTTLS (RFC 3207) and implicit TLS, with AUTH; the password comes from the environment."""
    import ssl

    cert, key = deploy / "cert.pem", deploy / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    port, sink = free_port(), Sink()
    tls = ({"tls_context": server_ctx, "require_starttls": True} if security == "starttls"
           else {"ssl_context": server_ctx})
    # aiosmtpd only counts STARTTLS as TLS for auth_require_tls, so require it there only
    controller = start_smtp(port, sink, authenticator=authenticator,
                            auth_require_tls=security == "starttls", **tls)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr("monitor.outcome.notify.smtp.tls_context", lambda: client_ctx)
    monkeypatch.setenv("MONITOR_SMTP__PASSWORD", "s3cret")
    try:
        ws = make_ws(deploy, photos, port=port, security=security, username="monitor")
        populate(ws, photos, others)
        sent = send_pending_alerts(ws)
        with ws.session() as s:
            errors = {a.error for a in s.exec(select(Alert)).all()}
        assert sent == 3, errors
    finally:
        controller.stop()
    assert logins and set(logins) == {(b"monitor", b"s3cret")}
    assert len(sink.envelopes) == 3


def test_cli_alerts_send_and_digest(deploy: Path, photos, others, smtp) -> None:
    from typer.testing import CliRunner

    from monitor.cli import app

    port, sink = smtp
    ws = make_ws(deploy, photos, port=port)
    populate(ws, photos, others)
    runner = CliRunner()
    res = runner.invoke(app, ["alerts", "send"])
    assert res.exit_code == 0 and "sent 3 alert(s); 0 pending" in res.stdout, res.output
    res = runner.invoke(app, ["alerts", "digest"])
    assert res.exit_code == 0 and "digest sent to owner@example.org" in res.stdout, res.output
    res = runner.invoke(app, ["alerts", "digest"])
    assert res.exit_code == 0 and "nothing new" in res.stdout
    assert len(sink.envelopes) == 4


def test_violations_found_before_smtp_is_configured_are_sent_once_it_is(deploy: Path, photos,
                                                                        others, smtp) -> None:
    """Alerts are queued whatever the mail settings: with no [smtp] nothing is sent and the
    rows wait; configured later (same data folder), `alerts send` delivers the backlog to
    smtp.recipients."""
    port, sink = smtp
    ws = make_ws(deploy, photos)  # no SMTP yet
    populate(ws, photos, others)
    assert send_pending_alerts(ws) == 0
    with ws.session() as s:
        waiting = s.exec(select(Alert).where(Alert.kind == "immediate")).all()
    assert len(waiting) == 3 and {a.status for a in waiting} == {"pending"}
    later = make_ws(deploy, photos, port=port)  # the same deployment, mail now configured
    assert send_pending_alerts(later) == 3 and len(sink.envelopes) == 3
    assert all(sorted(e.rcpt_tos) == sorted(RECIPIENTS) for e in sink.envelopes)


def test_alerts_send_without_smtp_says_how_to_set_it(deploy: Path) -> None:
    """The refusal names the section and keys to add (the [smtp] table is not eaten as
    terminal markup) and that the backlog waits."""
    from typer.testing import CliRunner

    from monitor.cli import app

    res = CliRunner().invoke(app, ["alerts", "send"])
    assert res.exit_code == 2
    assert "[smtp]" in res.output and 'host = "smtp.example.org"' in res.output
    assert "stay queued" in res.output
