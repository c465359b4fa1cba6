"""One mapping from :class:`~monitor.errors.MonitorError` to an HTTP answer.

Routers raise the error the services raised (or one of the tree's classes); this
handler answers ``{"detail": message, "code": slug}`` with the error's
``http_status``, so no router maps errors by hand. A :class:`QueueFull` also carries
``Retry-After`` (RFC 9110 §10.2.3).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from monitor.errors import MonitorError, QueueFull, SignatureError

RETRY_AFTER_QUEUE_FULL = "5"
"""Seconds a client is asked to wait when the queue is full (``Retry-After``)."""


async def monitor_error(_request: Request, exc: Exception) -> JSONResponse:
    """The JSON answer for ``exc`` (a :class:`MonitorError`) with its ``http_status``."""
    assert isinstance(exc, MonitorError)
    headers: dict[str, str] = {}
    if isinstance(exc, QueueFull):
        headers["Retry-After"] = RETRY_AFTER_QUEUE_FULL
    if isinstance(exc, SignatureError):
        headers["WWW-Authenticate"] = 'HMAC-SHA256 realm="monitor"'
    return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=exc.http_status,
                        headers=headers)


def install(app: FastAPI) -> None:
    """Register :func:`monitor_error` for every :class:`MonitorError` on ``app``."""
    app.add_exception_handler(MonitorError, monitor_error)
