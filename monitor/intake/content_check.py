"""Refuse fetched bodies that are clearly not images (an HTML error page served as
``image/jpeg``, text, JSON), using the one magic-byte table of
:mod:`monitor.imaging.sniff`."""

from __future__ import annotations

from monitor.errors import NotAnImage
from monitor.imaging.sniff import HEAD_BYTES, sniff

SNIFF_BYTES = HEAD_BYTES
"""Bytes examined for magic numbers (the WHATWG MIME Sniffing 'resource header' size)."""

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")


def check_image_body(url: str, content_type: str, head: bytes) -> None:
    """Refuse bodies that are clearly not images, whatever the server claims.

    Known image magic bytes win over the header (servers mislabel images). An
    HTML body is refused even when labelled ``image/*``. Unknown bytes pass when
    the label is ``image/*`` or generic, so the decoder can give its own verdict.

    Args:
        url: where the body came from (for the message).
        content_type: the ``Content-Type`` header ('' when absent).
        head: the first :data:`SNIFF_BYTES` bytes (or the whole body when shorter).

    Raises:
        NotAnImage: with the claimed content type and what the bytes are.
    """
    kind = sniff(head)
    ctype = content_type.split(";")[0].strip().lower()
    label = ctype or "no content type"
    if kind == "html":
        if ctype.startswith("image/"):
            raise NotAnImage(f"{url}: served as {label} but the body is an HTML page")
        raise NotAnImage(f"{url}: an HTML page ({label}), not an image")
    if kind is not None:
        return
    if ctype.startswith(_TEXT_TYPES):
        raise NotAnImage(f"{url}: content type {label} is not an image")
