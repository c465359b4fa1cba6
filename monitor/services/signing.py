"""API keys and the replay cache behind request signing v2 (:mod:`monitor.outcome.signing`).

* :func:`keyring` turns the settings into the keys valid now: ``default`` (the secret of
  ``server.webhook_secret`` or ``server.webhook_secret_file``, every scope) when set,
  plus each ``[[server.keys]]`` table (id, name, scopes, secret from ``secret_env`` or
  ``secret_file``). Several keys at once is how a secret is rotated.
* :func:`remember_nonce` records a verified request's nonce in the database (table
  ``nonce``, :mod:`monitor.store.nonces`): the primary-key insert fails for a nonce seen
  before, so a request is accepted once across workers, processes and restarts.
* :func:`sign_request` is the reference signer behind ``monitor sign``.

Scheme sources: AWS Signature Version 4 (canonical request), Stripe and GitHub signed
webhooks (timestamped HMAC-SHA256), RFC 2104 (HMAC).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from monitor.config import Settings
from monitor.config.daemon import DEFAULT_KEY_ID, SCOPES
from monitor.errors import ConfigError, SignatureError
from monitor.outcome.signing import signed_headers
from monitor.services.secret_strength import weak_reason
from monitor.store import Store
from monitor.store.models import utcnow
from monitor.store.nonces import prune, remember

PRUNE_EVERY = 60.0
"""Seconds between deletions of expired nonces (per database, per process)."""


@dataclass(frozen=True)
class ApiKey:
    """A key valid for signing requests.

    Attributes:
        id: sent in ``X-Monitor-Key``.
        name: who holds it; recorded as the actor of its reviews.
        scopes: what it may do (``submit``, ``search``, ``read``, ``review``, ``gallery``).
        secret: the HMAC key (never printed).
    """

    id: str
    name: str
    scopes: frozenset[str]
    secret: str = field(repr=False)

    def allows(self, scope: str) -> bool:
        """True when the key has ``scope``."""
        return scope in self.scopes


UNSIGNED = ApiKey("unsigned", "unsigned", frozenset(SCOPES), "")
"""The key an unsigned request stands for when ``server.require_signature`` is off."""


def keyring(settings: Settings, default_secret: str | None = None) -> dict[str, ApiKey]:
    """The keys valid under ``settings``, by id. ``default_secret`` (when not None) is the
    already-read secret of the ``default`` key; else it is read from the settings.

    Raises:
        ConfigError: a secret file cannot be read, a key's variable or file is empty, or a
            secret is weaker than 32 bytes (:mod:`monitor.services.secret_strength`).
    """
    server = settings.server
    if default_secret is None:
        default_secret = settings.secret(server.webhook_secret, server.webhook_secret_file)
    keys: dict[str, ApiKey] = {}
    if default_secret:
        keys[DEFAULT_KEY_ID] = ApiKey(DEFAULT_KEY_ID, DEFAULT_KEY_ID, frozenset(SCOPES),
                                      default_secret)
    for k in server.keys:
        keys[k.id] = ApiKey(k.id, k.holder, frozenset(k.scopes), k.secret(settings.root))
    for key in keys.values():
        if why := weak_reason(key.secret):
            raise ConfigError(f"the secret of key {key.id!r} {why}")
    return keys


_pruned: dict[int, float] = {}
_prune_lock = threading.Lock()


def remember_nonce(store: Store, key_id: str, nonce: str, window: float) -> None:
    """Accept ``nonce`` for ``key_id`` once: insert it, or refuse a replay. Every
    :data:`PRUNE_EVERY` seconds, nonces older than twice ``window`` (seconds; a
    timestamp is accepted up to ``window`` either side of the clock) are deleted.

    Blocks on the database: call it from a worker thread in async code.

    Raises:
        SignatureError: the nonce was seen before for this key (a replay).
    """
    now = utcnow()
    with store.session() as s:
        fresh = remember(s, key_id, nonce, now)
        with _prune_lock:
            due = time.monotonic() - _pruned.get(id(store.db), float("-inf")) > PRUNE_EVERY
            if due:
                _pruned[id(store.db)] = time.monotonic()
        if due:
            prune(s, now - timedelta(seconds=2 * window))
    if not fresh:
        raise SignatureError("nonce already used (replayed request)")


def sign_request(settings: Settings, method: str, url: str, body: bytes = b"",
                 key_id: str | None = None, now: float | None = None) -> dict[str, str]:
    """The v2 headers of one request, signed with the key ``key_id`` of ``settings``
    (default: ``default`` when configured, else the first ``[[server.keys]]`` table). Only
    that key's secret is read. ``now`` is unix time in seconds (default: the clock).

    Raises:
        ConfigError: no such key, no key configured, or its secret cannot be read.
    """
    server = settings.server
    default = settings.secret(server.webhook_secret, server.webhook_secret_file)
    ids = ([DEFAULT_KEY_ID] if default else []) + [k.id for k in server.keys]
    if not ids:
        raise ConfigError("no signing key: set server.webhook_secret (or its file) or add "
                          "a [[server.keys]] table")
    chosen = key_id or ids[0]
    if chosen not in ids:
        raise ConfigError(f"no key {chosen!r}; configured: {', '.join(ids)}")
    secret = default if chosen == DEFAULT_KEY_ID and default else \
        next(k for k in server.keys if k.id == chosen).secret(settings.root)
    return signed_headers(secret, method, url, body, key_id=chosen, now=now)
