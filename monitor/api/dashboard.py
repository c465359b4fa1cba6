"""Operator dashboard of ``monitor serve``: server-rendered HTML for reviewing violations.

Routes (browser-facing, outside ``/v1``, so no HMAC signatures):

* ``GET /`` → 303 to ``/violations``.
* ``GET /violations``: the list, filtered by ``status``, ``collection`` and
  ``severity`` (query parameters; empty = any), with counts per status and
  small inline thumbnails (matched region drawn), :data:`PAGE_SIZE` per ``page``.
* ``GET /violations/{id}``: one violation: protected and found images side by
  side with the region drawn, the evidence in plain words, source page and
  image URL, HTTP status and headers at fetch, sha256s, first/last seen, the
  audit trail and the review form. Mail links (``{server.base_url}/violations/{id}``)
  land here.
* ``POST /violations/{id}/status`` (form ``status``, ``note``, optional
  ``allow_domain``, hidden ``csrf``) → :func:`monitor.services.review.set_status`, then
  303 back to the detail page.
* ``GET /violations/{id}/evidence``: the archived bytes of the found image (from the
  blob store: the data folder or a bucket), as a download (never rendered inline).

Unknown ids: 404, JSON of :mod:`monitor.api.errors` (422 beyond SQLite's INTEGER).
Rows: :mod:`monitor.services.violations`.

Pages use the shared Jinja2 environment (:mod:`monitor.outcome.templating`), so
``dashboard_*.html.j2`` can be overridden from ``report.templates_dir``. No JavaScript.

**Access.** The dashboard is for the operator. When ``server.dashboard_token`` (or
``server.dashboard_token_file``) is configured, every request must carry it, as
``Authorization: Bearer <token>`` or the ``monitor_dashboard`` cookie, which
``?token=<token>`` on any page sets (an HMAC of the token; HttpOnly,
SameSite=Strict). Without a token, only loopback clients are served
(``server.host`` defaults to 127.0.0.1), and a request carrying proxy headers
(``Forwarded``, ``X-Forwarded-For``, ``X-Real-IP``) is not treated as local:
behind a reverse proxy, configure a token. The ``Host`` header must then also be
``localhost``, a loopback address or the host of ``server.base_url`` (against DNS
rebinding: another site's page re-bound to 127.0.0.1). Anything else gets 403.

**CSRF.** A status change must come from a page of this server: its ``Origin``
(else its ``Referer``) must be this server's origin (or that of ``server.base_url``),
and the form must echo the per-process token of :func:`csrf_token`.

**Actor.** The audit trail names the value of the request header named by
``server.dashboard_actor_header`` (for an authenticating proxy) when configured
and present, else ``dashboard``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections import Counter
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from monitor.api.intake import state_of
from monitor.config import Settings
from monitor.errors import MonitorError, NotFound
from monitor.outcome import stored
from monitor.outcome.items import SEVERITY_RANK, ReportItem
from monitor.outcome.templating import render
from monitor.outcome.thumbs import MARK_COLOUR, ThumbCache
from monitor.services import health, violations
from monitor.services.review import STATUSES, history, set_status
from monitor.services.violations import MAX_ID

PAGE_SIZE = 50
"""Violations per list page."""
LIST_THUMB_SIDE = 160
"""Longest side (pixels) of the list's thumbnails."""
COOKIE = "monitor_dashboard"
"""Cookie holding the dashboard token once ``?token=`` was given."""
DEFAULT_ACTOR = "dashboard"
"""Actor recorded for changes made here when no actor header is configured or sent."""
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
"""Headers that mark a request as relayed by a proxy (so not a local operator)."""
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Sent with every dashboard page: no scripts, no framing, no caching of evidence."""

_CSRF = secrets.token_urlsafe(32)
ViolationId = Annotated[int, PathParam(ge=1, le=MAX_ID)]  # beyond SQLite's INTEGER: 422

def csrf_token() -> str:
    """The anti-CSRF token of this process (hidden field of every form)."""
    return _CSRF


# -- access ------------------------------------------------------------------------

def configured_token(settings: Settings) -> str:
    """``server.dashboard_token``, else the file ``server.dashboard_token_file``; "" if unset."""
    return settings.secret(settings.server.dashboard_token, settings.server.dashboard_token_file)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a client address) is a loopback address (IPv4-mapped IPv6 included)."""
    try:
        ip = ipaddress.ip_address((host or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def local_host(request: Request) -> bool:
    """Whether the ``Host`` header names this machine (``localhost``, a loopback address)
    or the host of ``server.base_url``: a page of another site whose name was re-bound to
    127.0.0.1 (DNS rebinding) sends its own name and is refused."""
    own = _origin(f"http://{request.headers.get('host', '')}")
    if own is None:
        return False
    base = _origin(state_of(request).settings.server.base_url)
    host = own[1].strip("[]")
    return host == "localhost" or host.endswith(".localhost") or is_loopback(host) \
        or (base is not None and base[1] == own[1])


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def cookie_value(token: str) -> str:
    """What the cookie holds for ``token``: an HMAC of it (the token itself is never stored)."""
    return hmac.new(token.encode(), b"monitor-dashboard-cookie", hashlib.sha256).hexdigest()


def operator(request: Request) -> None:
    """Dependency: let the operator in, refuse anyone else with 403 (see the module doc).

    A valid ``?token=`` answers 303 to the same URL without it, setting the cookie.
    """
    token = configured_token(state_of(request).settings)
    if not token:
        client = request.client.host if request.client else None
        if not is_loopback(client):
            raise HTTPException(403, "the dashboard only serves loopback clients; set "
                                     "server.dashboard_token to open it to others")
        if any(h in request.headers for h in PROXY_HEADERS):
            raise HTTPException(403, "request relayed by a proxy: set server.dashboard_token "
                                     "to serve the dashboard behind one")
        if not local_host(request):
            raise HTTPException(403, "Host is not a loopback name (DNS rebinding guard); set "
                                     "server.base_url or server.dashboard_token")
        return
    auth = request.headers.get("authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if _same(bearer, token) or _same(request.cookies.get(COOKIE, ""), cookie_value(token)):
        return
    given = request.query_params.get("token")
    if given is not None and _same(given, token) and request.method == "GET":
        rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        cookie = (f"{COOKIE}={cookie_value(token)}; Path=/; HttpOnly; SameSite=Strict"
                  + ("; Secure" if request.url.scheme == "https" else ""))
        raise HTTPException(303, headers={"Location": request.url.path + ("?" + rest if rest
                                                                          else ""),
                                          "Set-Cookie": cookie})
    raise HTTPException(403, "dashboard token required (Authorization: Bearer, or ?token=)",
                        headers={"WWW-Authenticate": "Bearer"})


def _origin(url: str | None) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, default ports filled in."""
    if not url or url == "null":
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def same_origin(request: Request) -> bool:
    """Whether the request's ``Origin`` (else ``Referer``) is this server or ``server.base_url``."""
    claimed = _origin(request.headers.get("origin") or request.headers.get("referer"))
    if claimed is None:
        return False
    own = {_origin(f"{request.url.scheme}://{request.headers.get('host', '')}"),
           _origin(state_of(request).settings.server.base_url)}
    return claimed in own


def actor_of(request: Request) -> str:
    """Who made a change: the configured actor header's value, else :data:`DEFAULT_ACTOR`."""
    header = state_of(request).settings.server.dashboard_actor_header
    value = request.headers.get(header, "").strip() if header else ""
    return value[:200] or DEFAULT_ACTOR


# -- pages -------------------------------------------------------------------------

router = APIRouter(tags=["dashboard"], include_in_schema=False, dependencies=[Depends(operator)])


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``name`` with the shared environment as a hardened HTML response."""
    html = render(state_of(request).settings, name, mark=MARK_COLOUR, statuses=STATUSES,
                  **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def _choice(value: str | None) -> list[str] | None:
    return [value] if value else None


@router.get("/")
def home() -> RedirectResponse:
    """The dashboard starts at the violations list."""
    return RedirectResponse("/violations", status_code=303)


@router.get("/violations", response_class=HTMLResponse)
def violations_page(request: Request, status: str | None = None, collection: str | None = None,
                    severity: str | None = None,
                    page: Annotated[int, Query(ge=1, le=MAX_ID)] = 1) -> HTMLResponse:
    """The violations list: filters, counts per status, one row with thumbnails per violation."""
    ws = state_of(request).ws
    status, collection, severity = status or None, collection or None, severity or None
    scoped = violations.list_items(ws, collection=collection, severity=_choice(severity))
    counts = Counter(i.status for i in scoped)
    items = [i for i in scoped if status is None or i.status == status]
    pages = max(1, -(-len(items) // PAGE_SIZE))
    shown = items[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    cache = ThumbCache(ws, LIST_THUMB_SIDE)
    filters = {"status": status or "", "collection": collection or "", "severity": severity or ""}
    severities = sorted({*SEVERITY_RANK, *(i.severity for i in scoped)},
                        key=lambda k: (SEVERITY_RANK.get(k, 9), k))
    return _page(request, "dashboard_list.html.j2", title="Violations",
                 rows=[(i, *cache.pair(i)) for i in shown], total=len(scoped),
                 matching=len(items), counts=counts, filters=filters,
                 collections=violations.collection_names(ws), severities=severities, page=page,
                 pages=pages, jobs=health.database(ws)[1] or {},
                 dead=health.dead_letters(ws),
                 query=lambda **kw: urlencode({k: v for k, v in {**filters, **kw}.items() if v}))


def _detail(request: Request, violation_id: int, status_code: int = 200,
            error: str = "") -> HTMLResponse:
    ws = state_of(request).ws
    item: ReportItem = violations.get_item(ws, violation_id)  # NotFound: 404 (api.errors)
    protected, found = ThumbCache(ws).pair(item)
    return _page(request, "dashboard_detail.html.j2", status_code,
                 title=f"Violation #{violation_id}", item=item, protected=protected,
                 found=found, events=history(ws, violation_id), csrf=csrf_token(), error=error,
                 saved=request.query_params.get("saved") == "1",
                 evidence_href=f"/violations/{violation_id}/evidence"
                 if item.evidence_path else None)


@router.get("/violations/{violation_id}", response_class=HTMLResponse)
def violation_page(request: Request, violation_id: ViolationId) -> HTMLResponse:
    """One violation with its evidence, audit trail and review form."""
    return _detail(request, violation_id)


@router.post("/violations/{violation_id}/status", response_model=None)
def change_status(request: Request, violation_id: ViolationId, status: Annotated[str, Form()],
                  note: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
                  allow_domain: Annotated[bool, Form()] = False,
                  ) -> RedirectResponse | HTMLResponse:
    """Review form target: same-origin and token checks, then the change, then 303 to the page."""
    if not same_origin(request):
        raise HTTPException(403, "cross-origin form post refused (Origin/Referer is not this "
                                 "server)")
    if not _same(csrf, csrf_token()):
        raise HTTPException(403, "stale or missing form token: reload the page and try again")
    ws = state_of(request).ws
    try:
        set_status(ws, violation_id, status, actor_of(request), note.strip(),
                   allow_domain=allow_domain)
    except NotFound:
        raise  # 404 from the one handler (monitor.api.errors), not the form page
    except MonitorError as exc:  # unknown status, allow_domain misuse, rule file trouble
        return _detail(request, violation_id, 400, error=str(exc))
    return RedirectResponse(f"/violations/{violation_id}?saved=1", status_code=303)


@router.get("/violations/{violation_id}/evidence")
def evidence_file(request: Request, violation_id: ViolationId) -> Response:
    """The found image's archived bytes from the blob store, as an attachment (never shown)."""
    ws = state_of(request).ws
    item = violations.get_item(ws, violation_id)  # NotFound: 404 (api.errors)
    found = stored.fetch(ws, item.evidence_path)  # StoreError: 503
    if found is None:
        raise NotFound(f"violation {violation_id} has no archived evidence file")
    name = f"violation-{violation_id}-{(item.candidate_sha256 or 'evidence')[:16]}" \
           f"{Path(item.evidence_path or '').suffix}"
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
               "Content-Disposition": f'attachment; filename="{name}"'}
    send = FileResponse if isinstance(found, Path) else Response
    return send(found, media_type="application/octet-stream", headers=headers)
