"""``/v1/violations``: list and filter recorded violations, and review them.

``GET /v1/violations`` filters: ``status`` (open, confirmed, dismissed, licensed;
repeatable), ``collection`` (name), ``since`` (ISO 8601; created at or after),
``verdict``; paging with ``limit`` (1–1000) and ``offset``. Newest first.

``POST /v1/violations/{id}/status`` with JSON ``{"status", "note", "actor",
"allow_domain"}`` changes the review status through :func:`monitor.services.review.set_status`
(audit trail: who, when, from, to, note); 404 for an unknown id, 422 for an unknown
status or an id beyond SQLite's range, 422 with the reason when ``allow_domain`` finds
no web host (an upload seen on no page). The actor recorded is the name of the
request's API key when the signature named one (``request.state.monitor_key``), else
the body's ``actor``.

Errors are :class:`~monitor.errors.MonitorError` answered by the one handler of
:mod:`monitor.api.errors` (``{"detail", "code"}``); rows come from
:mod:`monitor.services.violations`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from monitor.api.intake import signed, state_of
from monitor.services import violations
from monitor.services.review import STATUSES, set_status
from monitor.services.violations import MAX_ID

router = APIRouter(prefix="/v1", tags=["violations"])


class StatusChange(BaseModel):
    """Body of a review-status change (``status`` is matched case-insensitively)."""

    status: str = Field(json_schema_extra={"enum": list(STATUSES)})
    note: str = ""
    actor: str = "api"
    allow_domain: bool = False


def api_actor(request: Request, default: str = "api") -> str:
    """Who made a change through the API: the name of the API key that signed the request
    (``request.state.monitor_key.name``, set by the signature check) when there is one,
    else ``default``; at most 200 characters."""
    key = getattr(request.state, "monitor_key", None)
    name = getattr(key, "name", None)
    return str(name or default).strip()[:200] or "api"


@router.post("/violations/{violation_id}/status", dependencies=[Depends(signed)])
def change_status(request: Request, violation_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                  change: StatusChange) -> dict[str, Any]:
    """Set the review status of one violation; returns it as listed.

    Raises:
        NotFound: no violation has this id (404).
        InvalidStatus: the status is unknown, or ``allow_domain`` goes with another (422).
        RuleError: the found image has no web host to allow, or the domain cannot be
            allow-listed (422, with the reason).
    """
    ws = state_of(request).ws
    set_status(ws, violation_id, change.status, api_actor(request, change.actor), change.note,
               allow_domain=change.allow_domain)
    return violations.get_json(ws, violation_id)


@router.get("/violations", dependencies=[Depends(signed)])
def list_violations(request: Request, status: list[str] | None = Query(None),
                    collection: str | None = None, verdict: str | None = None,
                    since: str | None = None, limit: int = Query(100, ge=1, le=1000),
                    offset: int = Query(0, ge=0, le=MAX_ID)) -> dict[str, Any]:
    """Violations matching the filters, newest first, with ``total`` before paging.

    Raises:
        InvalidRequest: ``since`` is not ISO 8601 (422).
    """
    return violations.list_page(state_of(request).ws, status=status, collection=collection,
                                verdict=verdict, since=violations.parse_since(since),
                                limit=limit, offset=offset)
