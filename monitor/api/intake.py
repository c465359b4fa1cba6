"""Accept-path helpers: bounded body reading, signature checks and image sniffing."""

from __future__ import annotations

import io

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError

from monitor.daemon.state import AppState
from monitor.errors import (
    EmptyInput,
    ImageTooLarge,
    InputTooLarge,
    SignatureError,
    UnsupportedFormat,
)
from monitor.imaging.decode import RASTER_FORMATS
from monitor.imaging.sniff import HEAD_BYTES, pillow_format, sniff
from monitor.outcome.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, target_body, verify


def state_of(request: Request) -> AppState:
    """The :class:`AppState` of the app serving ``request``."""
    return request.app.state.monitor


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes.

    Checks ``Content-Length`` first, then counts while reading (a client may
    lie or use chunked encoding).

    Raises:
        InputTooLarge: more than ``limit`` bytes (413).
        HTTPException: 400 when ``Content-Length`` is not a number.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise InputTooLarge(f"body of {declared} bytes; the limit is {limit}")
        except ValueError:
            raise HTTPException(400, "Content-Length is not a number") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InputTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # lets request.form()/json() reuse what was read
    return body


def check_signature(request: Request, body: bytes) -> None:
    """Refuse with 401 unless the request carries a valid signature (when required).

    Raises:
        SignatureError: missing, malformed, stale or wrong signature (401).

    The signed message is ``timestamp + "." + body``; a body-less request signs
    ``METHOD path[?query]`` instead (see :mod:`monitor.outcome.signing`).
    """
    state = state_of(request)
    server = state.settings.server
    if not server.require_signature:
        return
    payload = body or target_body(request.method, request.url.path, request.url.query)
    try:
        verify(state.secret, request.headers.get(TIMESTAMP_HEADER),
               request.headers.get(SIGNATURE_HEADER), payload, server.signature_tolerance)
    except SignatureError as exc:
        raise SignatureError(f"bad signature: {exc}") from None


async def signed(request: Request) -> None:
    """Dependency for body-less endpoints: verify the signature over the request target."""
    body = await read_body(request, state_of(request).settings.server.max_upload_bytes)
    check_signature(request, body)


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
