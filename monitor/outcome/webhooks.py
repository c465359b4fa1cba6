"""Outbound webhook: POST each new violation, signed like submissions, retried with backoff.

The checker writes a pending ``Alert(kind="webhook")`` per new violation when
``alerts.webhook_url`` is set (an outbox, :mod:`monitor.store.candidates`). This module
drains it: ``POST alerts.webhook_url`` with a JSON body and the signature v2 headers
of :mod:`monitor.outcome.signing` (method ``POST``, the URL's path and query, secret
``alerts.webhook_secret``, key id ``alerts.webhook_key_id``, a fresh nonce per
attempt; the v1 MAC follows in the same header for this release, so receivers written
for v1 keep working; unsigned when the secret is empty; a receiver checks them with
:func:`monitor.outcome.signing.verify_request`) plus ``X-Monitor-Event:
violation.created`` and ``X-Monitor-Delivery: <alert id>`` (receivers de-duplicate on
it). A 2xx answer marks the alert ``sent``; anything else is recorded in ``error``, and
it is retried after ``alerts.backoff * 2**(attempts-1)`` seconds until
``alerts.retries`` attempts have failed, then marked ``failed``.

Body::

    {"event": "violation.created",
     "violation": {"id", "verdict", "rule", "severity", "status", "created_at"},
     "candidate": {"id", "source", "page_url", "sha256", "source_name"},
     "protected": {"id", "path", "collection", "sha256"},
     "scores": {"stage", "score", "distance", "cosine", "inliers", "region",
                "query_overlap", "target_overlap", "target_region"}}

(``query_overlap``/``target_overlap``: shares in [0, 1] of the found image that is the
copy and of the protected image that was copied; ``target_region`` that part,
``[x0, y0, x1, y1]`` in the protected image's pixels; each null when unknown.)
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import Any, Protocol

import httpx

from monitor.outcome.signing import signed_headers
from monitor.store import Store
from monitor.store.alerts import due_alerts, get_alert, save_alert
from monitor.store.models import utcnow
from monitor.store.violations import violation_parts

log = logging.getLogger("monitor.webhooks")

TIMEOUT = 10.0
"""Seconds allowed per webhook POST."""

BATCH = 50
"""Alerts sent per pass at most."""


class OutcomeCounter(Protocol):
    """One labelled child of a counter (``prometheus_client.Counter.labels(...)``)."""

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` to the count."""
        ...


class LabelledCounter(Protocol):
    """A counter with one label, the delivery outcome (a ``prometheus_client.Counter``)."""

    def labels(self, *values: str) -> OutcomeCounter:
        """The child counting ``values`` (here one: ``sent``, ``retry`` or ``failed``)."""
        ...


class WebhookMetrics(Protocol):
    """What the sender counts into: any object with a ``webhooks`` counter labelled by
    outcome (the daemon passes its :class:`monitor.daemon.metrics.Metrics`)."""

    @property
    def webhooks(self) -> LabelledCounter:
        """Outbound webhook attempts by outcome."""
        ...


def payload(ws: Store, violation_id: int) -> dict[str, Any] | None:
    """The JSON body for one violation, or None when it no longer exists."""
    with ws.session() as s:
        parts = violation_parts(s, violation_id)
    if parts is None:
        return None
    v, c, m, p, coll = parts
    return {
        "event": "violation.created",
        "violation": {"id": v.id, "verdict": v.verdict, "rule": v.rule, "severity": v.severity,
                      "status": v.status, "created_at": v.created_at.isoformat()},
        "candidate": {"id": c.id, "source": c.source, "page_url": c.page_url,
                      "sha256": c.sha256, "source_name": c.source_name} if c else None,
        "protected": {"id": p.id, "path": p.path, "collection": coll.name if coll else None,
                      "sha256": p.sha256} if p else None,
        "scores": {"stage": m.stage, "score": m.score, "distance": m.distance,
                   "cosine": m.cosine, "inliers": m.inliers,
                   "region": json.loads(m.region_json) if m.region_json else None,
                   "query_overlap": m.query_overlap, "target_overlap": m.target_overlap,
                   "target_region": json.loads(m.target_region_json)
                   if m.target_region_json else None}
        if m else None,
    }


def deliver_due(ws: Store, client: httpx.Client, metrics: WebhookMetrics | None = None) -> int:
    """Send every due pending webhook alert once (at most :data:`BATCH`); returns how many
    were attempted. Each attempt is counted in ``metrics`` when given."""
    cfg = ws.settings.alerts
    if not cfg.webhook_url:
        return 0
    secret = ws.settings.secret(cfg.webhook_secret, cfg.webhook_secret_file)
    now = utcnow()
    with ws.session() as s:
        ids = due_alerts(s, "webhook", now, BATCH)
    for alert_id in ids:
        _deliver_one(ws, client, alert_id, cfg.webhook_url, secret, metrics)
    return len(ids)


def _deliver_one(ws: Store, client: httpx.Client, alert_id: int, url: str, secret: str,
                 metrics: WebhookMetrics | None) -> None:
    cfg = ws.settings.alerts
    with ws.session() as s:
        alert = get_alert(s, alert_id)
    doc = payload(ws, alert.violation_id) if alert.violation_id else None
    error = None
    if doc is None:
        error = "violation no longer exists"
    else:
        body = json.dumps(doc).encode()
        target = alert.recipients or url
        headers = {"Content-Type": "application/json", "X-Monitor-Event": doc["event"],
                   "X-Monitor-Delivery": str(alert_id)}
        if secret:
            headers |= signed_headers(secret, "POST", target, body, key_id=cfg.webhook_key_id,
                                      with_v1=True)  # v1 too, for one release
        try:
            resp = client.post(target, content=body, headers=headers)
            if not 200 <= resp.status_code < 300:
                error = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
    with ws.session() as s:
        alert = get_alert(s, alert_id)
        alert.attempts += 1
        if error is None:
            alert.status, alert.sent_at, alert.error, alert.next_attempt_at = \
                "sent", utcnow(), None, None
            outcome = "sent"
        elif alert.attempts >= cfg.retries or doc is None:
            alert.status, alert.error, alert.next_attempt_at = "failed", error, None
            outcome = "failed"
        else:
            delay = cfg.backoff * 2 ** (alert.attempts - 1)
            alert.error, alert.next_attempt_at = error, utcnow() + timedelta(seconds=delay)
            outcome = "retry"
        save_alert(s, alert)
    if metrics:
        metrics.webhooks.labels(outcome).inc()
    log.info("webhook alert %s: %s %s", alert_id, outcome, error or "")


class WebhookSender:
    """A thread delivering due webhook alerts every ``interval`` seconds or when woken,
    until ``stop`` is set; attempts are counted in ``metrics`` when given."""

    def __init__(self, ws: Store, stop: threading.Event, metrics: WebhookMetrics | None = None,
                 interval: float = 2.0) -> None:
        self.ws, self.stop, self.metrics, self.interval = ws, stop, metrics, interval
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)

    def start(self) -> None:
        """Start delivering (does nothing when no webhook URL is configured)."""
        if self.ws.settings.alerts.webhook_url:
            self.thread.start()

    def _loop(self) -> None:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            while not self.stop.is_set():
                try:
                    deliver_due(self.ws, client, self.metrics)
                except Exception:  # noqa: BLE001 - keep the daemon alive; retried next pass
                    log.exception("webhook delivery pass failed")
                self.wake.wait(self.interval)
                self.wake.clear()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end."""
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
