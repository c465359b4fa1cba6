"""Accept-path helpers: signature checks, bounded body reading and image sniffing.

Every ``/v1`` request is authenticated in two steps (signature v2, after AWS SigV4 and
Stripe/GitHub signed webhooks; the scheme is :mod:`monitor.outcome.signing`):

1. :func:`precheck`, from the headers alone, before a byte of the body is read: key id
   known, timestamp inside ``server.signature_tolerance``, nonce and MAC well formed, and
   the key holds the route's scope (:func:`required_scope`); else 401
   (:class:`SignatureError`) or 403 (:class:`Forbidden`).
2. :func:`read_body` reads at most ``server.max_upload_bytes`` (413) within
   ``server.body_timeout`` seconds (408), verifies the MAC and records the nonce in the
   database (:func:`monitor.services.signing.remember_nonce`; a replay gets 401). The key
   is then ``request.state.monitor_key`` (``id``, ``name``, ``scopes``).

v1 signatures (no nonce, ``default`` key only) pass while ``server.accept_v1_signatures``
is on, each logged as a warning; they go away in the next release.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from dataclasses import dataclass

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

import monitor.outcome.signing as sig
from monitor.api.errors import monitor_error
from monitor.daemon.state import AppState
from monitor.errors import (
    EmptyInput,
    Forbidden,
    ImageTooLarge,
    InputTooLarge,
    InvalidRequest,
    MonitorError,
    RequestTimeout,
    SignatureError,
    UnsupportedFormat,
)
from monitor.imaging.decode import RASTER_FORMATS
from monitor.imaging.sniff import HEAD_BYTES, pillow_format, sniff
from monitor.services.signing import UNSIGNED, ApiKey, keyring, remember_nonce

log = logging.getLogger("monitor.api")

_ROUTE_SCOPES = (
    ("POST", re.compile(r"/v1/submissions/?"), "submit"),
    ("POST", re.compile(r"/v1/search/?"), "search"),
    ("POST", re.compile(r"/v1/violations/[^/]+/status/?"), "review"),
    ("POST", re.compile(r"/v1/gallery(/.*)?"), "gallery"),
    ("DELETE", re.compile(r"/v1/gallery(/.*)?"), "gallery"),
)


@dataclass
class _Pending:
    """A request whose headers passed :func:`precheck`; ``body`` once verified."""

    key: ApiKey
    parts: sig.SignedParts | None  # None: v1, or unsigned with require_signature off
    signed: bool = True
    body: bytes | None = None


def state_of(request: Request) -> AppState:
    """The :class:`AppState` of the app serving ``request``."""
    return request.app.state.monitor


def keys_of(request: Request) -> dict[str, ApiKey]:
    """The keys valid for this app by id: those the daemon read at start
    (:attr:`AppState.keys`), else :func:`monitor.services.signing.keyring` once.

    Raises:
        ConfigError: a key's secret cannot be read.
    """
    st = state_of(request)
    if st.keys is None:
        st.keys = keyring(st.settings, st.secret or None)
    return st.keys


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs: ``read`` for GET/HEAD under ``/v1``; ``submit``
    (POST /v1/submissions), ``search`` (POST /v1/search), ``review`` (POST
    /v1/violations/{id}/status), ``gallery`` (POST, DELETE under /v1/gallery); None
    for anything else (no key may do it)."""
    if method in ("GET", "HEAD") and (path == "/v1" or path.startswith("/v1/")):
        return "read"
    for m, pattern, scope in _ROUTE_SCOPES:
        if method == m and pattern.fullmatch(path):
            return scope
    return None


def precheck(request: Request) -> None:
    """Check a request's signature headers, before its body is read (idempotent).

    Raises:
        SignatureError: unsigned, unknown key, timestamp outside the window, malformed
            nonce or signature, or a v1 signature while they are off (401).
        Forbidden: the key lacks the route's scope (403).
        ConfigError: a key's secret cannot be read (500).
    """
    if getattr(request.state, "monitor_pending", None) is not None:
        return
    server = state_of(request).settings.server
    headers = request.headers
    if not headers.get(sig.SIGNATURE_HEADER) and not headers.get(sig.KEY_HEADER):
        if server.require_signature:
            raise SignatureError("unsigned request: send X-Monitor-Key, X-Monitor-Timestamp, "
                                 "X-Monitor-Nonce and X-Monitor-Signature (signature v2)")
        pending = _Pending(UNSIGNED, None, signed=False)
    elif sig.is_v2(headers):
        parts = sig.parse_v2(headers)
        key = keys_of(request).get(parts.key_id)
        if key is None:
            raise SignatureError(f"unknown key id {parts.key_id!r}")
        sig.check_timestamp(parts.timestamp, server.signature_tolerance)
        pending = _Pending(key, parts)
    else:
        if not server.accept_v1_signatures:
            raise SignatureError("v1 signatures (sha256=) are no longer accepted: sign with "
                                 "v2 (see `monitor sign`)")
        key = keys_of(request).get("default")
        if key is None:
            raise SignatureError("v1 signatures need server.webhook_secret")
        sig.check_timestamp(headers.get(sig.TIMESTAMP_HEADER), server.signature_tolerance)
        pending = _Pending(key, None)
    scope = required_scope(request.method, request.scope["path"])
    if scope is None or not pending.key.allows(scope):
        raise Forbidden(f"key {pending.key.id!r} may not {request.method} "
                        f"{request.scope['path']} (needs scope {scope or 'none'!r})")
    request.state.monitor_pending = pending


def _pending(request: Request) -> _Pending:
    precheck(request)
    return request.state.monitor_pending


def _verify_mac(request: Request, pending: _Pending, body: bytes) -> None:
    """The MAC part of the check (no database). Raises SignatureError."""
    if pending.parts is not None:
        request.state.body_sha256 = sig.body_sha256(body)  # an upload's content hash too
        sig.verify_v2(pending.key.secret, pending.parts, request.method,
                      request.scope["path"], request.scope["query_string"].decode("latin-1"),
                      body, request.state.body_sha256)
        return
    payload = body or sig.target_body(request.method, request.url.path, request.url.query)
    sig.verify_v1(pending.key.secret, request.headers.get(sig.TIMESTAMP_HEADER),
                  request.headers.get(sig.SIGNATURE_HEADER), payload,
                  state_of(request).settings.server.signature_tolerance)
    log.warning("v1 request signature accepted for %s %s: v1 is deprecated and goes away "
                "in the next release; sign with v2 (`monitor sign`), then remove "
                "server.accept_v1_signatures", request.method, request.url.path)


def _remember(request: Request, pending: _Pending) -> None:
    """Record a verified v2 nonce (blocks on the database). Raises SignatureError."""
    if pending.parts is not None:
        remember_nonce(state_of(request).ws, pending.key.id, pending.parts.nonce,
                       state_of(request).settings.server.signature_tolerance)


def _accept(request: Request, pending: _Pending, body: bytes) -> None:
    pending.body = body
    if pending.signed:
        request.state.monitor_key = pending.key


async def _receive(request: Request, limit: int, timeout: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise HTTPException(400, "Content-Length is not a number") from None
        if too_big:
            raise InputTooLarge(f"body of {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise InputTooLarge(f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"request body not received within {timeout:g} s") from None
    except ClientDisconnect:  # answered to nobody, but not logged as a server error
        raise InvalidRequest("the client disconnected before sending the whole body") from None
    body = b"".join(chunks)
    request._body = body  # lets request.form()/json() reuse what was read
    return body


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body of an authenticated request: signature headers checked first
    (:func:`precheck`), then at most ``limit`` bytes read within ``server.body_timeout``
    seconds, then the MAC verified and the nonce recorded (in a worker thread).

    ``Content-Length`` is checked before reading, and bytes are counted while reading
    (a client may lie or use chunked encoding).

    Raises:
        SignatureError: bad, stale, replayed or missing signature (401).
        Forbidden: the key lacks the route's scope (403).
        InputTooLarge: more than ``limit`` bytes (413).
        RequestTimeout: the body took longer than ``server.body_timeout`` (408).
        HTTPException: 400 when ``Content-Length`` is not a number.
    """
    pending = _pending(request)
    body = await _receive(request, limit, state_of(request).settings.server.body_timeout)
    if pending.body is None or pending.body != body:
        if pending.signed:
            _verify_mac(request, pending, body)
            await run_in_threadpool(_remember, request, pending)
        _accept(request, pending, body)
    return body


def check_signature(request: Request, body: bytes) -> None:
    """Refuse unless the request is validly signed over ``body`` (when signatures are
    required). A no-op after :func:`read_body` returned this body; otherwise it checks
    everything itself, recording the nonce synchronously (it blocks on the database).

    Raises:
        SignatureError: missing, malformed, stale, replayed or wrong signature (401).
        Forbidden: the key lacks the route's scope (403).
    """
    pending = _pending(request)
    if pending.body is None or pending.body != body:
        if pending.signed:
            _verify_mac(request, pending, body)
            _remember(request, pending)
        _accept(request, pending, body)


async def signed(request: Request) -> None:
    """Dependency for routes without an upload: authenticate the request (its body, if
    any, is read with :func:`read_body`)."""
    await read_body(request, state_of(request).settings.server.max_upload_bytes)


class SignatureGate:
    """Pure ASGI middleware running :func:`precheck` on every ``/v1`` request with a scope
    (:func:`required_scope`) before the application sees it, so routes whose body FastAPI
    parses before their dependencies run (a JSON body model, e.g. the review status)
    also refuse unsigned or stale requests unread. Other requests pass through (the
    router answers 404/405; a route's own check still refuses them). Errors are answered
    by :func:`monitor.api.errors.monitor_error`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and required_scope(scope["method"], path) is not None:
            request = Request(scope)
            try:
                precheck(request)
            except MonitorError as exc:
                await (await monitor_error(request, exc))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def sniff_image(data: bytes) -> str:
    """The Pillow format of ``data`` by magic bytes (:mod:`monitor.imaging.sniff`),
    confirmed by Pillow reading the header. Pixels are not decoded here; the worker's
    safe decode records corrupt or oversized images.

    Raises:
        EmptyInput: zero bytes (415).
        UnsupportedFormat: unknown magic (HTML, SVG, PDF, text, ...), a header Pillow
            cannot parse, or no pixels (415).
        ImageTooLarge: the header claims a decompression bomb (413).
    """
    if not data:
        raise EmptyInput("empty body: 0 bytes is not an image")
    fmt = pillow_format(sniff(data[:HEAD_BYTES]))
    if fmt is None:
        raise UnsupportedFormat("not a supported image (JPEG, PNG, GIF, WebP, BMP, TIFF, "
                                "AVIF, ICO, PPM by magic bytes)")
    try:
        with Image.open(io.BytesIO(data), formats=RASTER_FORMATS) as im:
            width, height = im.size
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"decompression bomb refused: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnsupportedFormat(f"unreadable {fmt} header: {exc}") from None
    if width <= 0 or height <= 0:
        raise UnsupportedFormat(f"{fmt} image with no pixels")
    return fmt
