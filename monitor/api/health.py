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

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from monitor.api.intake import state_of
from monitor.store import queue

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """Database, queue depth, each stage's availability, scheduler and workers."""
    st = state_of(request)
    ws = st.ws
    doc: dict[str, Any] = {"status": "ok", "database": {"ok": True, "error": None}}
    try:
        with ws.db.connect() as conn:
            conn.execute(text("SELECT 1"))
        counts = queue.counts(ws.db)
        doc["queue"] = {"depth": counts.get("queued", 0) + counts.get("running", 0),
                        **{k: counts.get(k, 0) for k in ("queued", "running", "done", "error")}}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        doc["database"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        doc["status"] = "down"
    doc["stages"] = [{"name": s.name, "enabled": s.enabled, "available": s.available,
                      "reason": s.reason, "fix": s.fix} for s in ws.engine().statuses()]
    if st.extra_health:
        doc |= st.extra_health()
    degraded = any(s["enabled"] and not s["available"] for s in doc["stages"]) or any(
        isinstance(v, dict) and v.get("ok") is False for k, v in doc.items() if k != "database")
    if doc["status"] == "ok" and degraded:
        doc["status"] = "degraded"
    return JSONResponse(doc, status_code=200 if doc["database"]["ok"] else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus exposition of this daemon's metrics."""
    return Response(generate_latest(state_of(request).metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
