"""Health of a deployment: does the database answer, how deep is the queue, which stages run.

:func:`health` builds the document ``/healthz`` answers (see :mod:`monitor.api.health`);
the HTTP status (200 or 503) is the API's choice, from ``doc["database"]["ok"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from monitor.services.workspace import Workspace
from monitor.store import dispatch, queue
from monitor.store.db import ping


def database(ws: Workspace) -> tuple[dict[str, Any], dict[str, int] | None]:
    """``({"ok": bool, "error": str | None}, queue)`` after a ``SELECT 1`` and a count of
    jobs by state; ``queue`` is ``{"depth", "queued", "running", "done", "error"}`` (job
    counts; depth = queued + running), None when the database failed.

    Never raises: a database error is reported as ``"ExceptionType: message"``.
    """
    try:
        ping(ws.db)
        counts = queue.counts(ws.db)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, None
    jobs = {"depth": counts.get("queued", 0) + counts.get("running", 0),
            **{k: counts.get(k, 0) for k in ("queued", "running", "done", "error")}}
    return {"ok": True, "error": None}, jobs


def health(ws: Workspace, extra: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The health document of ``ws``::

        {"status": "ok" | "degraded" | "down",
         "database": {"ok": bool, "error": str | None},
         "queue": {...},            # only when the database answered (see database())
         "stages": [{"name", "enabled", "available", "reason", "fix"}],
         ...extra()}                # daemon parts, e.g. "scheduler", "workers"

    ``down``: the database failed. ``degraded``: an enabled stage is unavailable, or a
    part added by ``extra`` is a dict with ``"ok": False``.

    Raises:
        StageUnavailable: the engine is not loaded yet and CLIP is required but missing.
    """
    db, jobs = database(ws)
    doc: dict[str, Any] = {"status": "ok" if db["ok"] else "down", "database": db}
    if jobs is not None:
        doc["queue"] = jobs
    doc["stages"] = [{"name": s.name, "enabled": s.enabled, "available": s.available,
                      "reason": s.reason, "fix": s.fix} for s in ws.engine().statuses()]
    if extra:
        doc |= extra()
    degraded = any(s["enabled"] and not s["available"] for s in doc["stages"]) or any(
        isinstance(v, dict) and v.get("ok") is False for k, v in doc.items() if k != "database")
    if doc["status"] == "ok" and degraded:
        doc["status"] = "degraded"
    return doc


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and ``doctor``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def dead_letters(ws: Workspace, limit: int = 5) -> list[dict[str, Any]]:
    """The latest jobs in the dead-letter state (``error``), newest first, for the
    dashboard: ``{"id", "kind", "source", "attempts", "error", "updated_at"}`` each."""
    return [{"id": j.id, "kind": j.kind, "source": j.source, "attempts": j.attempts,
             "error": (j.error or "")[:300], "updated_at": j.updated_at}
            for j in dispatch.dead_letters(ws.db, limit)]
