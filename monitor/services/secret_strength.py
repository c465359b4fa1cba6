"""How much a configured secret can be guessed: refuse HMAC keys weaker than 32 bytes.

The estimate is deliberately simple and errs low for secrets people type: the length
times the bits of the smallest character pool that holds every character (hex digits 4,
digits 3.3, one letter case 4.7, letters and digits 5.95, printable ASCII 6.55), capped
by the length times the secret's own Shannon entropy per character (with the
Miller-Madow correction for a short sample) plus 1.5 bits, so ``"x" * 64`` or
``"ab" * 32`` count for what they are. ``openssl rand -hex 32``
(64 hex digits) and Python's ``secrets.token_urlsafe(32)`` reach :data:`MIN_BITS`.
"""

from __future__ import annotations

import math
import string
from collections import Counter

MIN_BITS = 256
"""Least estimated entropy of an HMAC key in bits: 32 bytes, the key length RFC 2104 §3
recommends for HMAC-SHA256 (its output length)."""

_POOLS = ((set(string.hexdigits.lower()), 16), (set(string.hexdigits.upper()), 16),
          (set(string.digits), 10), (set(string.ascii_lowercase), 26),
          (set(string.ascii_uppercase), 26), (set(string.ascii_letters + string.digits), 62),
          (set(string.ascii_letters + string.digits + "-_"), 64),
          (set(string.ascii_letters + string.digits + "+/="), 65),
          (set(string.printable) - set("\t\n\r\x0b\x0c"), 95))


def estimated_bits(secret: str) -> float:
    """Estimated entropy of ``secret`` in bits (see the module docstring); 0 for ""."""
    if not secret:
        return 0.0
    chars = set(secret)
    pool = next((size for members, size in _POOLS if chars <= members), 256)
    counts, n = Counter(secret), len(secret)
    shannon = -sum(c / n * math.log2(c / n) for c in counts.values())
    shannon += (len(counts) - 1) / (2 * n * math.log(2))  # Miller-Madow bias correction
    return n * min(math.log2(pool), shannon + 1.5)


def weak_reason(secret: str) -> str | None:
    """Why ``secret`` is too weak for an HMAC key, or None when it is strong enough."""
    bits = estimated_bits(secret)
    if bits >= MIN_BITS:
        return None
    return (f"has about {bits:.0f} bits of entropy, fewer than {MIN_BITS}; make one with "
            "`openssl rand -hex 32`")
