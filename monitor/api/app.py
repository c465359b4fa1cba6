"""The FastAPI application: routers :mod:`.submissions` (signed intake), :mod:`.search`,
:mod:`.gallery`, :mod:`.violations`, :mod:`.health` (``/healthz``, ``/metrics``) and
:mod:`.dashboard`; API docs at ``/docs`` and ``/redoc`` with local assets
(:mod:`.docs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from monitor.daemon.state import AppState


def create_app(state: AppState) -> FastAPI:
    """The FastAPI application serving ``state`` (its workspace engine should be loaded).

    Middleware, outermost first: :class:`~monitor.daemon.metrics.LatencyMiddleware`, then
    :class:`~monitor.api.limits.ConcurrencyLimit` (429 before routing, signature or body),
    then :class:`~monitor.api.intake.SignatureGate` (401/403 from the signature headers
    before any route reads a body).
    """
    from fastapi import FastAPI

    import monitor.api.dashboard as dashboard
    import monitor.api.gallery as gallery
    import monitor.api.health as health
    import monitor.api.search as search
    import monitor.api.submissions as submissions
    import monitor.api.violations as violations
    from monitor.api.docs import install_docs
    from monitor.api.errors import install
    from monitor.api.intake import SignatureGate
    from monitor.api.limits import ConcurrencyLimit
    from monitor.daemon.metrics import LatencyMiddleware

    app = FastAPI(title="monitor", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Image copy monitoring: signed submissions, search, gallery, "
                              "violations. Requests under /v1 carry X-Monitor-Key, "
                              "X-Monitor-Timestamp, X-Monitor-Nonce and X-Monitor-Signature: "
                              "v2=HMAC-SHA256 over method, path, canonical query, key, "
                              "timestamp, nonce and the body's SHA-256 (README, 'Signing'; "
                              "`monitor sign` prints them).")
    app.state.monitor = state
    for module in (submissions, search, gallery, violations, health, dashboard):
        app.include_router(module.router)
    install_docs(app)  # /docs and /redoc without a CDN
    install(app)
    server = state.settings.server
    app.add_middleware(SignatureGate)  # inside the limit: unsigned bodies are never read
    app.add_middleware(ConcurrencyLimit, total=server.max_concurrent_requests,
                       per_client=server.max_concurrent_per_client,
                       refused=lambda limit: state.metrics.http_refused.labels(limit).inc())
    app.add_middleware(LatencyMiddleware, metrics=state.metrics)  # outermost: times 429s too
    return app
