"""Prometheus metrics of one daemon (own registry, so several apps can live in one process)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Histogram buckets in seconds."""

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
"""HTTP methods kept as label values; any other (clients may send any token) is ``other``."""


class Metrics:
    """Counters and histograms exposed at ``/metrics``.

    * ``monitor_submissions_total{outcome}``: accepted, duplicate, unauthorized, forbidden,
      timeout, conflict, too_large, unsupported, queue_full, invalid.
    * ``monitor_checks_total{verdict}``: checks finished by the workers.
    * ``monitor_check_seconds``: time per queued check (seconds).
    * ``monitor_http_request_seconds{method,route,status}``: request latency; labels from
      fixed sets only (:func:`request_labels`).
    * ``monitor_http_refused_total{limit}``: requests refused with 429 by the concurrency
      limits (``total`` or ``client``, :mod:`monitor.api.limits`).
    * ``monitor_queue_depth``: queued + running jobs, read at scrape time.
    * ``monitor_jobs{state}``: jobs by state (queued, running, done, error: ``error`` is
      the dead-letter state, jobs that failed ``queue.max_attempts`` times), read at
      scrape time.
    * ``monitor_webhooks_total{outcome}``: outbound webhook attempts (sent, retry, failed).
    """

    def __init__(self, depth: Callable[[], float] | None = None,
                 states: Callable[[], dict[str, int]] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.submissions = Counter("monitor_submissions", "Submissions by outcome.",
                                   ["outcome"], registry=r)
        self.checks = Counter("monitor_checks", "Checks by verdict.", ["verdict"], registry=r)
        self.check_seconds = Histogram("monitor_check_seconds", "Seconds per queued check.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.request_seconds = Histogram("monitor_http_request_seconds",
                                         "HTTP request latency (seconds).",
                                         ["method", "route", "status"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.http_refused = Counter("monitor_http_refused",
                                    "Requests refused by the concurrency limits.", ["limit"],
                                    registry=r)
        for limit in ("total", "client"):
            self.http_refused.labels(limit)  # both series exported from the start, at 0
        self.webhooks = Counter("monitor_webhooks", "Outbound webhook attempts by outcome.",
                                ["outcome"], registry=r)
        self.queue_depth = Gauge("monitor_queue_depth", "Queued and running jobs.", registry=r)
        if depth is not None:
            self.queue_depth.set_function(depth)
        if states is not None:
            r.register(_JobStates(states))


class _JobStates:
    """Collector of ``monitor_jobs{state}``, read from the job table at scrape time."""

    STATES = ("queued", "running", "done", "error")

    def __init__(self, states: Callable[[], dict[str, int]]) -> None:
        self.states = states

    def collect(self):
        """Yield the gauge family (every state, 0 when absent)."""
        from prometheus_client.core import GaugeMetricFamily

        counts = self.states()
        family = GaugeMetricFamily("monitor_jobs", "Jobs by state (error: dead letter).",
                                   labels=["state"])
        for state in self.STATES:
            family.add_metric([state], counts.get(state, 0))
        yield family


def request_labels(scope: dict, status: int) -> tuple[str, str, str]:
    """``(method, route, status)`` label values of one answered HTTP request (ASGI
    ``scope`` after routing), each from a bounded set whatever the client sends: the
    method if in :data:`METHODS`, else ``other``; the matched route's template
    (``/v1/violations/{violation_id}/status``, also when only the path matched and the
    method did not), else ``unmatched``; the status code the app answered (100-599)."""
    method = scope.get("method", "")
    return (method if method in METHODS else "other", route_template(scope) or "unmatched",
            str(status))


def route_template(scope: dict) -> str | None:
    """The path template of the route that took the request, or None when none matched.

    FastAPI puts its own routes in ``scope["route"]``; the plain Starlette routes it adds
    (``/openapi.json``, ``/docs``, ``/redoc``) leave only ``scope["endpoint"]``, looked up
    among the application's routes.
    """
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", None)
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    for candidate in getattr(scope.get("app"), "routes", ()):
        if getattr(candidate, "endpoint", None) is endpoint:
            return getattr(candidate, "path", None)
    return None


class LatencyMiddleware:
    """Pure ASGI middleware timing every HTTP request into ``request_seconds``, labelled
    by :func:`request_labels` (so 1,000 invented methods or paths add no series).
    """

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.request_seconds.labels(*request_labels(scope, status["code"])
                                                ).observe(time.perf_counter() - start)
