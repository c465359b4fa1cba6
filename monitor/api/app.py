"""The FastAPI application: routers :mod:`.submissions` (signed intake), :mod:`.search`,
:mod:`.gallery`, :mod:`.violations`, :mod:`.health` (``/healthz``, ``/metrics``) and
:mod:`.dashboard`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from monitor.daemon.state import AppState


def create_app(state: AppState) -> FastAPI:
    """The FastAPI application serving ``state`` (its workspace engine should be loaded)."""
    from fastapi import FastAPI

    import monitor.api.dashboard as dashboard
    import monitor.api.gallery as gallery
    import monitor.api.health as health
    import monitor.api.search as search
    import monitor.api.submissions as submissions
    import monitor.api.violations as violations
    from monitor.api.errors import install
    from monitor.daemon.metrics import LatencyMiddleware

    app = FastAPI(title="monitor", version="0.1.0",
                  description="Image copy monitoring: signed submissions, search, gallery, "
                              "violations. Requests under /v1 carry X-Monitor-Timestamp and "
                              "X-Monitor-Signature: sha256=HMAC-SHA256(secret, timestamp + '.' "
                              "+ body) (see monitor.outcome.signing).")
    app.state.monitor = state
    for module in (submissions, search, gallery, violations, health, dashboard):
        app.include_router(module.router)
    install(app)
    app.add_middleware(LatencyMiddleware, metrics=state.metrics)
    return app
