"""HMAC-SHA256 request signatures, shared by inbound submissions and outbound webhooks.

Scheme (Stripe/GitHub-style signed webhooks; HMAC per RFC 2104 with SHA-256)::

    X-Monitor-Timestamp: <unix time, whole seconds, decimal>
    X-Monitor-Signature: sha256=<lowercase hex of HMAC-SHA256(secret, message)>

    message = timestamp + "." + raw request body        (bytes; the body exactly as sent)

For requests without a body (``GET``, ``DELETE``) the raw body is replaced by
the request target, ``METHOD + " " + path[?query]`` (e.g. ``GET
/v1/submissions/ab12``), so a captured signature cannot be replayed against
another resource. The receiver refuses a timestamp more than ``tolerance``
seconds (default 300) away from its clock in either direction (replay window)
and compares signatures with :func:`hmac.compare_digest` (constant time).
Several signatures may be sent comma-separated (``sha256=a,sha256=b``) while a
secret is being rotated; one valid is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from monitor.errors import SignatureError

TIMESTAMP_HEADER = "X-Monitor-Timestamp"
SIGNATURE_HEADER = "X-Monitor-Signature"
SCHEME = "sha256="


def signing_payload(timestamp: str, body: bytes) -> bytes:
    """The exact bytes that are signed: ``timestamp + "." + body``."""
    return timestamp.encode("ascii") + b"." + body


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Monitor-Signature`` value for ``body`` at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), signing_payload(timestamp, body), hashlib.sha256)
    return SCHEME + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Both headers for sending ``body`` now (or at unix time ``now``)."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}


def target_body(method: str, path: str, query: str = "") -> bytes:
    """What stands in for the body of a body-less request: ``METHOD path[?query]``."""
    return f"{method.upper()} {path}{'?' + query if query else ''}".encode()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes,
           tolerance: float = 300.0, now: float | None = None) -> None:
    """Accept or refuse a signed request.

    Raises:
        SignatureError: a header is missing or malformed, the timestamp is
            outside ``now ± tolerance`` seconds, or no signature matches.
    """
    if not secret:
        raise SignatureError("server has no webhook secret configured")
    if not timestamp or not signature:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise SignatureError(f"timestamp outside the {int(tolerance)} s replay window")
    expected = sign(secret, timestamp, body)
    ok = False
    for candidate in signature.split(","):
        ok |= hmac.compare_digest(candidate.strip().encode(), expected.encode())
    if not ok:
        raise SignatureError("signature does not match")
