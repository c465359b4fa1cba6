"""HMAC-SHA256 request signatures, shared by the inbound API and the outbound webhooks.

**v2** (current), after AWS Signature Version 4, Stripe and GitHub signed webhooks; the
MAC is HMAC-SHA256 (RFC 2104, FIPS 180-4) keyed with the secret's UTF-8 bytes::

    X-Monitor-Key:       <key id>                       [A-Za-z0-9._-]{1,64}
    X-Monitor-Timestamp: <unix time, whole seconds>     decimal digits
    X-Monitor-Nonce:     <random, once per request>     [A-Za-z0-9_-]{22,128} (hex or base64url)
    X-Monitor-Signature: v2=<lowercase hex HMAC-SHA256(secret, canonical string)>

    canonical string = "MONITOR-HMAC-SHA256-V2" LF
                       METHOD (upper case) LF
                       canonical path LF
                       canonical query LF
                       key id LF
                       timestamp LF
                       nonce LF
                       lowercase hex SHA-256 of the raw body (of b"" when there is none)

The *canonical path* is the decoded path percent-encoded again, every byte outside the
RFC 3986 unreserved set (``A-Z a-z 0-9 - _ . ~``) and ``/`` as ``%XX`` with upper-case
hex, ``/`` when empty. The *canonical query* is as in SigV4: each ``name=value`` pair
decoded (``+`` is a space, as form decoding reads it) and percent-encoded the same way,
sorted by name then value, joined with ``&`` (a pair without ``=`` gets an empty value);
empty when there is no query. The receiver refuses a timestamp more than ``tolerance``
seconds (default 300) from its clock either way, and a nonce it has seen for that key
inside the window; signatures are compared in constant time (:func:`hmac.compare_digest`).

**v1** (deprecated; accepted for one release behind ``server.accept_v1_signatures``)::

    X-Monitor-Timestamp: <unix seconds>
    X-Monitor-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

with ``METHOD path[?query]`` standing in for an empty body. It binds neither the method
nor the path of a request with a body, and has no nonce.

References: RFC 2104 (HMAC); RFC 3986 §2.3 (unreserved characters); AWS, "Create a
canonical request for Signature Version 4"; Stripe, "Verify webhook signatures"; GitHub,
"Validating webhook deliveries".
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

from monitor.errors import SignatureError

KEY_HEADER = "X-Monitor-Key"
TIMESTAMP_HEADER = "X-Monitor-Timestamp"
NONCE_HEADER = "X-Monitor-Nonce"
SIGNATURE_HEADER = "X-Monitor-Signature"
ALGORITHM = "MONITOR-HMAC-SHA256-V2"
"""First line of every v2 canonical string."""
V2_PREFIX = "v2="
V1_PREFIX = "sha256="
SCHEME = V1_PREFIX
"""The v1 prefix (kept for callers of the v1 helpers)."""

KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""The shape of a key id."""
NONCE = re.compile(r"[A-Za-z0-9_-]{22,128}")
"""The shape of a nonce: at least 22 characters (128 bits as base64url, 88 as hex)."""
TIMESTAMP = re.compile(r"[0-9]{1,12}")
HEX_MAC = re.compile(r"[0-9a-f]{64}")
UNRESERVED = "-_.~"
"""Characters besides letters and digits left unencoded (RFC 3986 §2.3)."""


@dataclass(frozen=True)
class SignedParts:
    """The v2 signature headers of one request, shape-checked by :func:`parse_v2`."""

    key_id: str
    timestamp: str
    nonce: str
    signatures: tuple[str, ...]
    """Lower-case hex MACs given with ``v2=`` (several allowed, comma-separated)."""


def new_nonce() -> str:
    """A fresh nonce: 16 random bytes (:func:`secrets.token_hex`), 32 hex characters."""
    return secrets.token_hex(16)


def body_sha256(body: bytes) -> str:
    """Lower-case hex SHA-256 of ``body`` (FIPS 180-4)."""
    return hashlib.sha256(body).hexdigest()


def canonical_path(path: str) -> str:
    """The canonical form of a *decoded* URL path (what the server routes on):
    UTF-8, every byte outside unreserved and ``/`` as ``%XX``; ``/`` when empty."""
    return quote(path or "/", safe="/" + UNRESERVED)


def _enc(part: str) -> str:
    return quote(unquote_to_bytes(part.replace("+", " ")), safe=UNRESERVED)


def canonical_query(query: str) -> str:
    """The SigV4 canonical query of a raw (still encoded) query string ``a=1&b=x%20y``:
    pairs decoded then re-encoded, sorted by name and value, joined by ``&``."""
    pairs = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((_enc(name), _enc(value)))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_request(method: str, path: str, query: str, key_id: str, timestamp: str,
                      nonce: str, body_hash: str) -> str:
    """The v2 string to sign (see the module docstring); ``path`` decoded, ``query`` raw,
    ``body_hash`` from :func:`body_sha256`."""
    return "\n".join((ALGORITHM, method.upper(), canonical_path(path), canonical_query(query),
                      key_id, timestamp, nonce, body_hash))


def mac_v2(secret: str, canonical: str) -> str:
    """Lower-case hex HMAC-SHA256 of ``canonical`` keyed with ``secret`` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256
                    ).hexdigest()


def signed_headers(secret: str, method: str, url: str, body: bytes = b"", *,
                   key_id: str = "default", now: float | None = None,
                   nonce: str | None = None, with_v1: bool = False) -> dict[str, str]:
    """The four v2 headers for sending ``body`` as ``METHOD url`` now (or at unix time
    ``now``, seconds). ``url`` may be absolute or a path with a query; its path is taken
    as sent (percent-encoded) and decoded here. ``nonce`` defaults to :func:`new_nonce`.
    ``with_v1`` appends the v1 MAC to the signature (``v2=…,sha256=…``), which receivers
    written for v1 accept (v1 allowed a comma-separated list); v2 receivers ignore it.

    Raises:
        SignatureError: ``key_id`` or ``nonce`` does not have the accepted shape.
    """
    parts = urlsplit(url)
    nonce = nonce or new_nonce()
    if not KEY_ID.fullmatch(key_id) or not NONCE.fullmatch(nonce):
        raise SignatureError("key id or nonce has the wrong shape")
    ts = str(int(time.time() if now is None else now))
    canonical = canonical_request(method, unquote(parts.path), parts.query, key_id, ts,
                                  nonce, body_sha256(body))
    signature = V2_PREFIX + mac_v2(secret, canonical)
    if with_v1:
        signature += "," + sign_v1(secret, ts, body or target_body(method, parts.path,
                                                                   parts.query))
    return {KEY_HEADER: key_id, TIMESTAMP_HEADER: ts, NONCE_HEADER: nonce,
            SIGNATURE_HEADER: signature}


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def is_v2(headers: Mapping[str, str]) -> bool:
    """True when the request carries v2 headers (a key id or a ``v2=`` signature); header
    names in any case."""
    h = _lower(headers)
    return bool(h.get(KEY_HEADER.lower())) or \
        V2_PREFIX in (h.get(SIGNATURE_HEADER.lower()) or "")


def parse_v2(headers: Mapping[str, str]) -> SignedParts:
    """The v2 headers of a request (names in any case), shape-checked; nothing is
    verified yet.

    Raises:
        SignatureError: a header is missing or has the wrong shape.
    """
    h = _lower(headers)
    key_id, ts = h.get(KEY_HEADER.lower()), h.get(TIMESTAMP_HEADER.lower())
    nonce, sig = h.get(NONCE_HEADER.lower()), h.get(SIGNATURE_HEADER.lower())
    if not (key_id and ts and nonce and sig):
        raise SignatureError(f"missing one of {KEY_HEADER}, {TIMESTAMP_HEADER}, "
                             f"{NONCE_HEADER}, {SIGNATURE_HEADER}")
    if not KEY_ID.fullmatch(key_id):
        raise SignatureError(f"{KEY_HEADER} is not a key id")
    if not TIMESTAMP.fullmatch(ts):
        raise SignatureError(f"{TIMESTAMP_HEADER} is not unix seconds")
    if not NONCE.fullmatch(nonce):
        raise SignatureError(f"{NONCE_HEADER} must be 22-128 characters of A-Z a-z 0-9 _ -")
    macs = tuple(p.strip()[len(V2_PREFIX):] for p in sig.split(",")
                 if p.strip().startswith(V2_PREFIX))
    if not macs or not all(HEX_MAC.fullmatch(m) for m in macs):
        raise SignatureError(f"{SIGNATURE_HEADER} must be v2=<64 lower-case hex digits>")
    return SignedParts(key_id, ts, nonce, macs)


def check_timestamp(timestamp: str | None, tolerance: float, now: float | None = None) -> int:
    """``timestamp`` (unix seconds) as an int when inside ``now ± tolerance`` seconds.

    Raises:
        SignatureError: missing, not decimal seconds, or outside the window.
    """
    if not timestamp or not TIMESTAMP.fullmatch(timestamp):
        raise SignatureError(f"missing or malformed {TIMESTAMP_HEADER} (unix seconds)")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise SignatureError(f"timestamp outside the {int(tolerance)} s replay window")
    return int(timestamp)


def verify_v2(secret: str, parts: SignedParts, method: str, path: str, query: str,
              body: bytes, digest: str | None = None) -> None:
    """Check the MAC of a request whose headers :func:`parse_v2` returned; ``path`` is the
    decoded path, ``query`` the raw query string, ``digest`` the body's
    :func:`body_sha256` when the caller computed it (else computed here). The timestamp
    window (:func:`check_timestamp`) and the nonce (seen once) are the caller's to check.

    Raises:
        SignatureError: no given MAC matches.
    """
    canonical = canonical_request(method, path, query, parts.key_id, parts.timestamp,
                                  parts.nonce, digest or body_sha256(body))
    expected = mac_v2(secret, canonical).encode()
    ok = False
    for candidate in parts.signatures:
        ok |= hmac.compare_digest(candidate.encode(), expected)
    if not ok:
        raise SignatureError("signature does not match")


def verify_request(secret: str, headers: Mapping[str, str], method: str, url: str,
                   body: bytes, tolerance: float = 300.0, now: float | None = None
                   ) -> SignedParts:
    """Everything a receiver checks from the message alone (e.g. of a monitor webhook):
    header shapes, the timestamp inside ``now ± tolerance`` seconds and the MAC of
    ``METHOD url`` (path as sent, percent-encoded) with ``body``. Remembering the nonce
    for ``2 * tolerance`` seconds, to refuse replays, is the receiver's part.

    Raises:
        SignatureError: a header is missing or malformed, stale, or the MAC is wrong.
    """
    parts = parse_v2(headers)
    check_timestamp(parts.timestamp, tolerance, now)
    split = urlsplit(url)
    verify_v2(secret, parts, method, unquote(split.path), split.query, body)
    return parts


# -- v1 (deprecated) -----------------------------------------------------------------
def signing_payload(timestamp: str, body: bytes) -> bytes:
    """v1: the exact bytes that are signed, ``timestamp + "." + body``."""
    return timestamp.encode("ascii") + b"." + body


def sign_v1(secret: str, timestamp: str, body: bytes) -> str:
    """v1: the ``X-Monitor-Signature`` value (``sha256=<hex>``) for ``body`` at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), signing_payload(timestamp, body), hashlib.sha256)
    return V1_PREFIX + mac.hexdigest()


def signed_headers_v1(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """v1: both headers for sending ``body`` now (or at unix time ``now``)."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign_v1(secret, ts, body)}


def target_body(method: str, path: str, query: str = "") -> bytes:
    """v1: what stands in for the body of a body-less request, ``METHOD path[?query]``."""
    return f"{method.upper()} {path}{'?' + query if query else ''}".encode()


def verify_v1(secret: str, timestamp: str | None, signature: str | None, body: bytes,
              tolerance: float = 300.0, now: float | None = None) -> None:
    """v1: accept or refuse a signed request (``sha256=`` signatures, comma-separated).

    Raises:
        SignatureError: a header is missing or malformed, the timestamp is
            outside ``now ± tolerance`` seconds, or no signature matches.
    """
    if not secret:
        raise SignatureError("no secret configured for v1 signatures")
    if not signature:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    check_timestamp(timestamp, tolerance, now)
    expected = sign_v1(secret, timestamp or "", body).encode()
    ok = False
    for candidate in signature.split(","):
        ok |= hmac.compare_digest(candidate.strip().encode(), expected)
    if not ok:
        raise SignatureError("signature does not match")
