"""Draining the alert outbox: immediate mails with retry and backoff, and periodic digests.

Immediate alerts are :class:`~monitor.store.models.Alert` rows (``kind =
"immediate"``) the check pipeline inserts for each new violation
(:mod:`monitor.store.candidates`); their delivery state is kept through
:mod:`monitor.store.alerts`. The (kind, violation) uniqueness means a
violation is mailed at most once. An alert is
*claimed* with a conditional UPDATE (attempts + 1, ``next_attempt_at`` pushed
to a lease) before it is sent, so two drains running at once never both send
it, and a process killed mid-send retries after the lease. A failed send
records the error and waits ``alerts.backoff × 2^(attempts-1)`` seconds; after
``alerts.retries`` attempts the alert is ``failed``. Alerts of violations
reviewed as dismissed or licensed are ``skipped``.

A digest covers the violations flagged since the end of the last *sent*
digest (default: the last 24 h) and is recorded as an Alert with
``kind = "digest"`` and its period; an empty one is not sent unless
``alerts.digest_send_empty``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.errors import MonitorError
from monitor.outcome.items import as_utc, query_items
from monitor.outcome.notify.message import alert_subject, build_message, digest_subject
from monitor.outcome.notify.smtp import SendError, deliver
from monitor.outcome.report import write_report
from monitor.store import Store
from monitor.store.alerts import (
    claim_alert,
    due_alerts,
    get_alert,
    last_sent_digest,
    save_alert,
)
from monitor.store.candidates import QUIET_STATUSES
from monitor.store.models import Alert, utcnow
from monitor.store.violations import get_violation

DIGEST_PERIOD = timedelta(hours=24)
"""Period of the first digest (no earlier digest was sent)."""
DIGEST_STATUSES = ["open", "confirmed"]
"""Review states a digest lists (dismissed and licensed are left out)."""


def mail_enabled(ws: Store) -> bool:
    """True when ``smtp.host`` is set."""
    return bool(ws.settings.smtp.host)


def _recipients(ws: Store, alert: Alert) -> list[str]:
    listed = [r.strip() for r in alert.recipients.split(",") if r.strip()]
    return listed or list(ws.settings.smtp.recipients)


def _lease(ws: Store) -> timedelta:
    """How long a claimed alert is hidden from other drains: a send's worst case plus margin."""
    return timedelta(seconds=4 * ws.settings.smtp.timeout + 60)


def backoff(ws: Store, attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: ``alerts.backoff × 2^(attempts-1)`` seconds."""
    return timedelta(seconds=ws.settings.alerts.backoff * 2 ** max(0, attempts - 1))


def send_pending_alerts(ws: Store, now: datetime | None = None) -> int:
    """Send every pending immediate alert that is due at ``now`` (default: now, UTC).

    Returns how many were sent. Failures are recorded on the row (error,
    attempts, ``next_attempt_at``), never raised. Does nothing (returns 0,
    alerts stay pending) while ``smtp.host`` is unset.
    """
    now = as_utc(now or utcnow())
    if not mail_enabled(ws):
        return 0
    with ws.session() as s:
        due = due_alerts(s, "immediate", now)
    return sum(_send_one(ws, alert_id, now) for alert_id in due)


def _claim(ws: Store, alert: Alert, now: datetime) -> bool:
    """Take ``alert`` for sending (attempts + 1, lease); False when another drain has it."""
    with ws.session() as s:
        return claim_alert(s, alert, now + _lease(ws))


def _send_one(ws: Store, alert_id: int, now: datetime) -> int:
    with ws.session() as s:
        alert = get_alert(s, alert_id)
        v = get_violation(s, alert.violation_id) if alert.violation_id else None
        if v is None or v.status in QUIET_STATUSES:
            alert.status, alert.next_attempt_at = "skipped", None
            alert.error = f"violation {v.status}" if v else "violation gone"
            save_alert(s, alert)
            return 0
        items = query_items(s, violation_ids=[v.id])
    if not _claim(ws, alert, now):
        return 0
    attempts, recipients = alert.attempts + 1, _recipients(ws, alert)
    try:
        msg = build_message(ws, kind="alert", subject=alert_subject(items[0]), items=items,
                            recipients=recipients, now=now)
        refused = deliver(ws.settings, msg, recipients)
    except (*SendError, MonitorError) as exc:
        _record(ws, alert_id, attempts, now, error=f"{type(exc).__name__}: {exc}")
        return 0
    _record(ws, alert_id, attempts, now, sent=True,
            error=f"refused: {refused}" if refused else None)
    return 1


def _record(ws: Store, alert_id: int, attempts: int, now: datetime, *,
            sent: bool = False, error: str | None = None) -> None:
    with ws.session() as s:
        alert = get_alert(s, alert_id)
        alert.attempts, alert.error = attempts, (error or "")[:2000] or None
        if sent:
            alert.status, alert.sent_at, alert.next_attempt_at = "sent", now, None
        elif attempts >= ws.settings.alerts.retries:
            alert.status, alert.next_attempt_at = "failed", None
        else:
            alert.next_attempt_at = now + backoff(ws, attempts)
        save_alert(s, alert)


def digest_period(ws: Store, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the next digest: end of the last sent digest (else ``now`` - 24 h) to now."""
    with ws.session() as s:
        last = last_sent_digest(s)
    start = as_utc(last.period_end) if last and last.period_end else now - DIGEST_PERIOD
    return start, now


def send_digest(ws: Store, now: datetime | None = None) -> Alert | None:
    """Mail the digest of violations flagged in :func:`digest_period`; return its record.

    Returns None when nothing was due: mail disabled, an empty period (unless
    ``alerts.digest_send_empty``). A failed send is recorded (``failed``, with
    the error) and returned; the next digest then covers its period too.
    The period's HTML report is also written to the report folder.
    """
    now = as_utc(now or utcnow())
    if not mail_enabled(ws):
        return None
    start, end = digest_period(ws, now)
    if start >= end:
        return None
    with ws.session() as s:
        items = query_items(s, since=start, until=end, status=DIGEST_STATUSES)
    if not items and not ws.settings.alerts.digest_send_empty:
        return None
    recipients = list(ws.settings.smtp.recipients)
    alert = Alert(kind="digest", period_start=start, period_end=end, attempts=1,
                  recipients=",".join(recipients), created_at=now)
    try:
        report = write_report(ws, since=start, until=end, status=DIGEST_STATUSES,
                              out=ws.report_dir / f"digest-{end.strftime('%Y%m%d-%H%M%S')}.html")
        msg = build_message(ws, kind="digest", subject=digest_subject(items, start, end),
                            items=items, recipients=recipients, period=(start, end),
                            report_path=report, now=now)
        refused = deliver(ws.settings, msg, recipients)
    except (*SendError, MonitorError) as exc:
        alert.status, alert.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
    else:
        alert.status, alert.sent_at = "sent", now
        alert.error = f"refused: {refused}" if refused else None
    with ws.session() as s:
        return save_alert(s, alert)
