"""Prometheus metrics of one daemon (own registry, so several apps can live in one process)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Histogram buckets in seconds."""


class Metrics:
    """Counters and histograms exposed at ``/metrics``.

    * ``monitor_submissions_total{outcome}``: accepted, duplicate, unauthorized,
      too_large, unsupported, queue_full, invalid.
    * ``monitor_checks_total{verdict}``: checks finished by the workers.
    * ``monitor_check_seconds``: time per queued check (seconds).
    * ``monitor_http_request_seconds{method,route,status}``: request latency.
    * ``monitor_queue_depth``: queued + running jobs, read at scrape time.
    * ``monitor_webhooks_total{outcome}``: outbound webhook attempts (sent, retry, failed).
    """

    def __init__(self, depth: Callable[[], float] | None = None) -> None:
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
        self.webhooks = Counter("monitor_webhooks", "Outbound webhook attempts by outcome.",
                                ["outcome"], registry=r)
        self.queue_depth = Gauge("monitor_queue_depth", "Queued and running jobs.", registry=r)
        if depth is not None:
            self.queue_depth.set_function(depth)


class LatencyMiddleware:
    """Pure ASGI middleware timing every HTTP request into ``request_seconds``.

    The route label is the matched route template (``/v1/submissions/{job_id}``),
    not the raw path, to keep label cardinality bounded.
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
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.request_seconds.labels(scope["method"], label, str(status["code"])
                                                ).observe(time.perf_counter() - start)
