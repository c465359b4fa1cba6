"""``/healthz`` (unsigned) and ``/metrics`` (Prometheus text format, unsigned).

``/healthz`` answers 200 when the database answers, else 503, with::

    {"status": "ok" | "degraded" | "down",
     "database": {"ok": bool, "error": str | null},
     "queue": {"depth": int, "queued": int, "running": int, "error": int, "done": int},
     "stages": [{"name", "enabled", "available", "reason", "fix"}],
     ...daemon parts: "scheduler", "workers"}

``degraded`` means an enabled stage is unavailable (e.g. CLIP weights missing)
or a daemon part is not running.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.api.intake import state_of
from monitor.services.health import health

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """Database, queue depth, each stage's availability, scheduler and workers
    (:func:`monitor.services.health.health`); 503 when the database fails."""
    st = state_of(request)
    doc = health(st.ws, st.extra_health)
    return JSONResponse(doc, status_code=200 if doc["database"]["ok"] else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus exposition of this daemon's metrics."""
    return Response(generate_latest(state_of(request).metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
