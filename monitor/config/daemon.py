"""Settings sections of the daemon: server, fetching, sources, SMTP and alerts.

Pure pydantic models; :mod:`monitor.config` assembles and loads them. Secrets
(``SecretStr``) come from the environment (``MONITOR_SMTP__PASSWORD``) or from
a file named by the matching ``*_file`` key, never from a committed TOML.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from monitor.config.section import Section
from monitor.errors import ConfigError

Scope = Literal["submit", "search", "read", "review", "gallery"]
"""What a key may do: ``submit`` (POST /v1/submissions), ``search`` (POST /v1/search),
``read`` (GET under /v1), ``review`` (POST /v1/violations/{id}/status), ``gallery``
(POST and DELETE under /v1/gallery)."""

SCOPES: tuple[Scope, ...] = ("submit", "search", "read", "review", "gallery")
"""Every scope; the ``default`` key (``server.webhook_secret``) has them all."""

DEFAULT_KEY_ID = "default"
"""The id of the key whose secret is ``server.webhook_secret`` (or its file)."""



class KeySettings(Section):
    """One API key, a ``[[server.keys]]`` table. Several may be valid at once (rotation:
    add the new key, move clients, remove the old one). The secret is read from the
    environment variable named by ``secret_env`` or the file named by ``secret_file``,
    never from the TOML itself."""

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$",
                    description="Key id sent in X-Monitor-Key (A-Z a-z 0-9 . _ -, 1-64).")
    name: str = Field("", max_length=200, description="Who holds the key; the actor "
                      "recorded for its reviews (default: the id).")
    scopes: list[Scope] = Field(description="What the key may do: submit, search, read, "
                                "review, gallery.")
    secret_env: str = Field("", description="Environment variable holding the secret.")
    secret_file: str = Field("", description="File holding the secret (relative paths "
                             "from the config folder).")

    @model_validator(mode="after")
    def _one_secret_source(self) -> KeySettings:
        if bool(self.secret_env) == bool(self.secret_file):
            raise ValueError(f"key {self.id!r}: set exactly one of secret_env, secret_file")
        return self

    @property
    def holder(self) -> str:
        """The key's name, or its id when it has none."""
        return self.name or self.id

    def secret(self, root: Path) -> str:
        """The key's secret, stripped of surrounding whitespace; a relative
        ``secret_file`` is read from ``root`` (the deployment root).

        Raises:
            ConfigError: the variable is unset or empty, or the file cannot be read or
                is empty.
        """
        if self.secret_env:
            value = os.environ.get(self.secret_env, "").strip()
            where = f"environment variable {self.secret_env}"
        else:
            path = Path(self.secret_file).expanduser()
            path = path if path.is_absolute() else root / path
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"server.keys {self.id!r}: cannot read secret file "
                                  f"{self.secret_file}: {exc}") from exc
            where = f"file {self.secret_file}"
        if not value:
            raise ConfigError(f"server.keys {self.id!r}: no secret in {where}")
        return value


class ServerSettings(Section):
    """`monitor serve`: HTTP API, scheduler and queue workers in one process."""

    host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(8080, description="TCP port of the HTTP API.")
    workers: int = Field(2, description="Queue worker threads checking candidates.")
    queue_max: int = Field(10_000, description="Queued jobs above which submissions get 429.")
    max_upload_bytes: int = Field(25_000_000, description="Largest accepted upload (bytes).")
    require_signature: bool = Field(True, description="Refuse unsigned /v1 requests (401).")
    webhook_secret: SecretStr = Field(SecretStr(""), description="HMAC key for submissions; "
                                      "set MONITOR_SERVER__WEBHOOK_SECRET.")
    webhook_secret_file: str = Field("", description="File holding the HMAC key instead.")
    signature_tolerance: int = Field(300, description="Replay window for signatures (seconds).")
    keys: list[KeySettings] = Field(
        default_factory=list, description="API keys besides the default one "
        "(webhook_secret, id \"default\", all scopes): [[server.keys]] tables with id, "
        "name, scopes and secret_env or secret_file.")
    accept_v1_signatures: bool = Field(
        False, description="Also accept v1 signatures (timestamp + body, no nonce, default "
        "key only), each logged as a warning, while clients move to v2. Deprecated: "
        "removed in the next release.")
    max_concurrent_requests: int = Field(
        64, ge=1, description="Requests handled at once in all; more get 429 with Retry-After.")
    max_concurrent_per_client: int = Field(
        8, ge=1, description="Requests handled at once per client address; more get 429.")
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds allowed to receive a request body (slow senders: 408).")
    base_url: str = Field("", description="Public URL of this server, for links in mail.")
    dashboard_token: SecretStr = Field(
        SecretStr(""), description="Dashboard access token; empty: loopback clients only. "
        "Set MONITOR_SERVER__DASHBOARD_TOKEN.")
    dashboard_token_file: str = Field("", description="File holding the dashboard token instead.")
    dashboard_actor_header: str = Field("", description="Header naming the reviewer (set by an "
                                        "authenticating proxy), e.g. X-Remote-User.")

    @model_validator(mode="after")
    def _unique_key_ids(self) -> ServerSettings:
        ids = [k.id for k in self.keys]
        if self.webhook_secret.get_secret_value() or self.webhook_secret_file:
            ids.append(DEFAULT_KEY_ID)
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"key id used twice: {', '.join(dupes)} (\"{DEFAULT_KEY_ID}\" is "
                             "the webhook_secret's key)")
        return self


class FetchSettings(Section):
    """Fetching candidate images and crawling pages (httpx)."""

    user_agent: str = Field("monitor/0.1 (image copy detection)",
                            description="User-Agent sent and matched against robots.txt.")
    timeout: float = Field(20.0, description="Total time allowed per request (seconds).")
    connect_timeout: float = Field(5.0, description="TCP/TLS connect timeout (seconds).")
    max_redirects: int = Field(5, description="Redirects followed per request.")
    per_host_concurrency: int = Field(2, description="Simultaneous requests to one host.")
    per_host_delay: float = Field(1.0, description="Minimum gap between requests to one host (s).")
    retries: int = Field(3, description="Retries on 429/5xx and network errors.")
    backoff: float = Field(1.0, description="First retry delay, doubled each time (seconds).")
    backoff_max: float = Field(60.0, description="Longest retry delay (seconds).")
    respect_robots: bool = Field(True, description="Honour robots.txt for our user agent.")
    allow_private: bool = Field(False, description="Allow private/loopback addresses (tests).")
    allow_networks: list[str] = Field(
        default_factory=list, description="CIDR networks allowed besides public addresses, "
        "e.g. [\"127.0.0.0/8\"]; link-local and metadata addresses are always refused.")


class SourceSettings(Section):
    """One place to watch, declared as a ``[[sources]]`` table."""

    name: str = Field(description="Unique name, used by `monitor scan NAME`.")
    kind: Literal["folder", "urls", "page", "sitemap", "feed"] = Field(
        description="folder, urls, page (HTML crawl), sitemap or feed (RSS/Atom).")
    location: str = Field("", description="Folder path, page URL, sitemap URL or feed URL.")
    urls: list[str] = Field(default_factory=list, description="Image or page URLs (kind urls).")
    interval: int = Field(0, description="Run every N seconds (0: no interval schedule).")
    cron: str = Field("", description="Cron expression (5 fields, UTC); empty: none.")
    depth: int = Field(1, description="Link depth followed from `location` (kind page).")
    max_pages: int = Field(50, description="Pages fetched per run at most (kind page).")
    max_images: int = Field(1000, description="Images queued per run at most.")
    collection: str = Field("", description="Only match this collection (empty: all).")
    enabled: bool = Field(True, description="Schedule this source.")


class SmtpSettings(Section):
    """Outgoing mail for alerts and digests."""

    host: str = Field("", description="SMTP server; empty disables e-mail.")
    port: int = Field(587, description="SMTP port (587 STARTTLS, 465 implicit TLS, 25 none).")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="How the connection is secured: starttls (upgrade on port "
        "587), tls (implicit TLS, port 465) or none (plain text; local relays only).")
    username: str = Field("", description="Login name; empty: no authentication.")
    password: SecretStr = Field(SecretStr(""), description="Set MONITOR_SMTP__PASSWORD.")
    password_file: str = Field("", description="File holding the SMTP password instead.")
    sender: str = Field("monitor@localhost", description="From address.")
    recipients: list[str] = Field(default_factory=list, description="To addresses.")
    timeout: float = Field(30.0, description="SMTP connection timeout (seconds).")


class AlertSettings(Section):
    """When to tell people about violations."""

    immediate: bool = Field(True, description="Mail each new violation as it is found.")
    digest_cron: str = Field("0 8 * * *", description="Digest schedule (cron, UTC); empty: off.")
    digest_send_empty: bool = Field(False, description="Send a digest even with nothing new.")
    retries: int = Field(5, description="Send attempts before an alert is marked failed.")
    backoff: float = Field(30.0, description="First retry delay, doubled each time (seconds).")
    webhook_url: str = Field("", description="POST new violations here (signed); empty: off.")
    webhook_secret: SecretStr = Field(SecretStr(""), description="HMAC key for the outbound "
                                      "webhook; set MONITOR_ALERTS__WEBHOOK_SECRET.")
    webhook_secret_file: str = Field("", description="File holding that key instead.")
    webhook_key_id: str = Field(DEFAULT_KEY_ID, pattern=r"^[A-Za-z0-9._-]{1,64}$",
                                description="Key id sent in X-Monitor-Key with each webhook.")
