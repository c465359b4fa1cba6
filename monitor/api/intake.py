"""Accept-path helpers: bounded body reading, signature checks, image sniffing, upload storage."""

from __future__ import annotations

import io
from pathlib import Path

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError

from monitor.daemon.state import AppState
from monitor.imaging.decode import RASTER_FORMATS
from monitor.matching.index.base import atomic_write
from monitor.outcome.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    target_body,
    verify,
)

MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"), (0, b"\x89PNG\r\n\x1a\n", "PNG"), (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"), (8, b"WEBP", "WEBP"), (0, b"BM", "BMP"), (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"), (4, b"ftypavif", "AVIF"), (4, b"ftypavis", "AVIF"),
    (0, b"\x00\x00\x01\x00", "ICO"), (0, b"P4", "PPM"), (0, b"P5", "PPM"), (0, b"P6", "PPM"),
)
"""``(offset, bytes, format)`` signatures of the raster formats accepted over HTTP."""


def state_of(request: Request) -> AppState:
    """The :class:`AppState` of the app serving ``request``."""
    return request.app.state.monitor


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes.

    Checks ``Content-Length`` first, then counts while reading (a client may
    lie or use chunked encoding). Raises ``HTTPException(413)``.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise HTTPException(413, f"body of {declared} bytes; the limit is {limit}")
        except ValueError:
            raise HTTPException(400, "Content-Length is not a number") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # lets request.form()/json() reuse what was read
    return body


def check_signature(request: Request, body: bytes) -> None:
    """Refuse with 401 unless the request carries a valid signature (when required).

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
        raise HTTPException(401, f"bad signature: {exc}",
                            headers={"WWW-Authenticate": "HMAC-SHA256"}) from None


async def signed(request: Request) -> None:
    """Dependency for body-less endpoints: verify the signature over the request target."""
    body = await read_body(request, state_of(request).settings.server.max_upload_bytes)
    check_signature(request, body)


def sniff_image(data: bytes, max_pixels: int | None = None) -> str:
    """The raster format of ``data`` by magic bytes, confirmed by Pillow reading the header.

    Raises ``HTTPException(415)`` for empty bodies, unknown magic (HTML, SVG,
    PDF, text, ...) and headers Pillow cannot parse. Pixels are not decoded
    here; the worker's safe decode records corrupt or oversized images.
    """
    if not data:
        raise HTTPException(415, "empty body: 0 bytes is not an image")
    fmt = next((f for off, magic, f in MAGIC if data[off:off + len(magic)] == magic), None)
    if fmt is None:
        raise HTTPException(415, "not a supported image (JPEG, PNG, GIF, WebP, BMP, TIFF, "
                                 "AVIF, ICO, PPM by magic bytes)")
    try:
        with Image.open(io.BytesIO(data), formats=RASTER_FORMATS) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise HTTPException(415, f"unreadable {fmt} header: {exc}") from None
    if width <= 0 or height <= 0:
        raise HTTPException(415, f"{fmt} image with no pixels")
    return fmt


def store_upload(data_dir: Path, sha256: str, data: bytes) -> str:
    """Keep uploaded bytes until checked; returns the path relative to ``data_dir``."""
    rel = f"uploads/{sha256[:2]}/{sha256}"
    if not (data_dir / rel).exists():
        atomic_write(data_dir / rel, data)
    return rel
