"""Every error monitor raises on purpose derives from :class:`MonitorError`.

Hierarchy (in the manner of httpx's exception tree), with the HTTP status each maps to::

    MonitorError                        500
    ├── ConfigError                     500  config.toml or environment invalid
    ├── RuleError                       422  a rules/*.toml file invalid (names file and key)
    ├── InvalidRequest                  422  a request's own fields are wrong
    │   └── InvalidStatus               422  a review status that does not exist
    ├── DecodeError                     415  candidate bytes could not become pixels
    │   ├── EmptyInput                  415  zero bytes
    │   ├── InputTooLarge               413  byte limit exceeded
    │   ├── ImageTooLarge               413  pixel limit exceeded (decompression bomb guard)
    │   ├── UnsupportedFormat           415  SVG, HTML, PDF, text, unknown magic bytes
    │   └── CorruptImage                415  truncated or malformed image data
    ├── StageUnavailable                503  a stage cannot run (e.g. CLIP weights missing)
    ├── ModelLoadFailure                503  a model could not load (reason and fix)
    ├── FetchError                      502  a URL could not be fetched
    │   ├── AddressRefused              422  resolves to an address the SSRF guard refuses
    │   ├── NotAnImage                  415  an HTML page or text served as the image
    │   ├── RobotsDisallowed            403  robots.txt forbids the URL (RFC 9309)
    │   ├── HTTPStatusError             502  the server answered with an error status
    │   ├── FetchTimeout                504  connect, read or total time limit exceeded
    │   ├── HostNotFound                502  the host name does not resolve
    │   └── TooManyRedirects            502  more than ``fetch.max_redirects``
    ├── SignatureError                  401  a request signature missing, stale or wrong
    ├── NotFound                        404  a named gallery image, collection or source
    ├── Conflict                        409  an idempotency key reused for another body
    ├── QueueFull                       429  the work queue holds ``max_depth`` jobs
    │   └── TooManyRequests             429  too many requests at once (all, or one client)
    ├── StoreError                      503  the database is unusable (schema too new, locked)
    │   └── BlobNotFound                503  a stored object (upload, gallery copy) is missing
    ├── Forbidden                       403  a valid key without the scope the route needs
    └── RequestTimeout                  408  a body not received within ``server.body_timeout``

Each error has a short machine-readable ``code`` recorded on the candidate row next to
the human message, so reports can group failures by kind; ``http_status`` is what the
API answers (one exception handler, :func:`monitor.api.app.create_app`) and
``exit_code`` what the CLI exits with (:data:`EXIT_USAGE` for what the user can fix,
:data:`EXIT_FAILURE` for the rest). ``check`` and ``scan`` also exit :data:`EXIT_FOUND`
and :data:`EXIT_INPUT` for what they found (``monitor check --help``).
"""

from __future__ import annotations

EXIT_FOUND = 1
"""CLI exit code of ``check``/``scan`` when a candidate got a verdict named by
``--fail-on`` (``violation``, ``review``): for cron jobs and CI."""

EXIT_INPUT = 3
"""CLI exit code of ``check``/``scan`` when a candidate could not be checked (a missing
path, an empty, truncated or non-image file, a failed fetch): each is also recorded."""

EXIT_FAILURE = 4
"""CLI exit code of an error the user cannot fix by changing the command (a service is
down: the database is locked or newer than this code)."""

EXIT_USAGE = 2
"""CLI exit code of an error in what was asked or configured, a missing model included
(its fix is configuration: weights or ``clip.enabled``); Typer uses 2 for usage too."""


class MonitorError(Exception):
    """Base class of every deliberate monitor error.

    Attributes:
        code: a stable slug recorded with the error.
        http_status: the HTTP status the API answers with.
        exit_code: the CLI's exit status.
    """

    code = "error"
    http_status = 500
    exit_code = EXIT_USAGE


class ConfigError(MonitorError):
    """``config.toml`` or a ``MONITOR_*`` variable failed validation."""

    code = "config"


class RuleError(MonitorError):
    """A rule file failed to parse or validate, or a review cannot apply a rule change;
    the message names file and key."""

    code = "rule"
    http_status = 422


class InvalidRequest(MonitorError, ValueError):
    """A request's own fields are wrong (a missing part, a bad date, a bad JSON object)."""

    code = "invalid"
    http_status = 422


class InvalidStatus(InvalidRequest):
    """A review status that is not one of ``monitor.services.review.STATUSES``."""

    code = "invalid_status"


class DecodeError(MonitorError):
    """Candidate bytes could not be decoded into pixels."""

    code = "decode"
    http_status = 415


class EmptyInput(DecodeError):
    """The input holds zero bytes."""

    code = "empty"


class InputTooLarge(DecodeError):
    """The input exceeds ``decode.max_bytes``."""

    code = "too_many_bytes"
    http_status = 413


class ImageTooLarge(DecodeError):
    """Width × height exceeds ``decode.max_pixels`` (decompression-bomb guard)."""

    code = "too_many_pixels"
    http_status = 413


class UnsupportedFormat(DecodeError):
    """The bytes are not a supported raster image (SVG, HTML, PDF, text, unknown)."""

    code = "unsupported_format"


class CorruptImage(DecodeError):
    """The header looked like an image but the data is truncated or malformed."""

    code = "corrupt"


class StageUnavailable(MonitorError):
    """A stage cannot run here; ``reason`` says why and ``fix`` what to do."""

    code = "stage_unavailable"
    http_status = 503

    def __init__(self, stage: str, reason: str, fix: str = "") -> None:
        self.stage, self.reason, self.fix = stage, reason, fix
        tail = f" (fix: {fix})" if fix else ""
        super().__init__(f"stage {stage!r} unavailable: {reason}{tail}")


class ModelLoadFailure(MonitorError):
    """A model could not be loaded: ``reason`` says why and ``fix`` what to do."""

    code = "model_load"
    http_status = 503

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.reason, self.fix = reason, fix


class FetchError(MonitorError):
    """A candidate URL could not be fetched (scheme, status, size or network)."""

    code = "fetch"
    http_status = 502


class AddressRefused(FetchError):
    """The URL's host resolves to an address the SSRF guard does not allow."""

    code = "address_refused"
    http_status = 422


class NotAnImage(FetchError):
    """The response is not an image (HTML error page served as image/jpeg, text, ...)."""

    code = "not_image"
    http_status = 415


class RobotsDisallowed(FetchError):
    """robots.txt forbids our user agent to fetch this URL (RFC 9309)."""

    code = "robots"
    http_status = 403


class HTTPStatusError(FetchError):
    """The server answered with an error status (after any retries); ``status`` is it."""

    code = "http_status"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class FetchTimeout(FetchError):
    """Connect, read or total time limit exceeded."""

    code = "timeout"
    http_status = 504


class HostNotFound(FetchError):
    """The URL's host name does not resolve (DNS says it does not exist)."""

    code = "host_not_found"


class TooManyRedirects(FetchError):
    """More than ``max_redirects`` redirects."""

    code = "redirects"


class SignatureError(MonitorError):
    """Why a request signature was refused (missing, malformed, stale or wrong)."""

    code = "signature"
    http_status = 401


class NotFound(MonitorError):
    """A named gallery image, collection, violation, job or source does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(MonitorError):
    """The request conflicts with what is stored (an idempotency key reused for a
    different body)."""

    code = "conflict"
    http_status = 409


class QueueFull(MonitorError):
    """The queue holds ``max_depth`` jobs already; try again later."""

    code = "queue-full"
    http_status = 429
    exit_code = EXIT_FAILURE


class TooManyRequests(QueueFull):
    """A client, or all clients together, hold the most requests the server handles at
    once (``server.max_concurrent_per_client``, ``max_concurrent_requests``)."""

    code = "too-many-requests"


class StoreError(MonitorError):
    """The database cannot be used (schema newer than this code, locked, corrupt)."""

    code = "store"
    http_status = 503
    exit_code = EXIT_FAILURE


class BlobNotFound(StoreError):
    """A key is absent from the blob store (:mod:`monitor.store.blobs`): the upload or
    stored gallery copy was deleted, or the store in use is not the one that holds it."""

    code = "blob_not_found"


class Forbidden(MonitorError):
    """The request is authenticated but its key lacks the scope the route needs
    (``submit``, ``search``, ``read``, ``review``, ``gallery``; RFC 9110 §15.5.4)."""

    code = "forbidden"
    http_status = 403


class RequestTimeout(MonitorError):
    """The request body did not arrive within ``server.body_timeout`` seconds
    (RFC 9110 §15.5.9); the connection is closed."""

    code = "request_timeout"
    http_status = 408
