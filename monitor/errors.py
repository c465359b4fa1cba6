"""Every error monitor raises on purpose derives from :class:`MonitorError`.

Hierarchy (in the manner of httpx's exception tree)::

    MonitorError
    ├── ConfigError            config.toml or environment invalid
    ├── RuleError              a rules/*.toml file invalid (names file and key)
    ├── DecodeError            candidate bytes could not become pixels
    │   ├── EmptyInput         zero bytes
    │   ├── InputTooLarge      byte limit exceeded
    │   ├── ImageTooLarge      pixel limit exceeded (decompression bomb guard)
    │   ├── UnsupportedFormat  SVG, HTML, PDF, text, unknown magic bytes
    │   └── CorruptImage       truncated or malformed image data
    ├── StageUnavailable       a stage cannot run (e.g. CLIP weights missing)
    ├── FetchError             a URL could not be fetched (status, size, scheme)
    ├── NotFound               a named gallery image, collection or source is unknown
    └── StoreError             the database is unusable (schema too new, locked)

Each error has a short machine-readable ``code`` recorded on the candidate row
next to the human message, so reports can group failures by kind.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of every deliberate monitor error. ``code`` is a stable slug."""

    code = "error"


class ConfigError(MonitorError):
    """``config.toml`` or a ``MONITOR_*`` variable failed validation."""

    code = "config"


class RuleError(MonitorError):
    """A rule file failed to parse or validate; the message names file and key."""

    code = "rule"


class DecodeError(MonitorError):
    """Candidate bytes could not be decoded into pixels."""

    code = "decode"


class EmptyInput(DecodeError):
    """The input holds zero bytes."""

    code = "empty"


class InputTooLarge(DecodeError):
    """The input exceeds ``decode.max_bytes``."""

    code = "too_many_bytes"


class ImageTooLarge(DecodeError):
    """Width × height exceeds ``decode.max_pixels`` (decompression-bomb guard)."""

    code = "too_many_pixels"


class UnsupportedFormat(DecodeError):
    """The bytes are not a supported raster image (SVG, HTML, PDF, text, unknown)."""

    code = "unsupported_format"


class CorruptImage(DecodeError):
    """The header looked like an image but the data is truncated or malformed."""

    code = "corrupt"


class StageUnavailable(MonitorError):
    """A stage cannot run here; ``reason`` says why and ``fix`` what to do."""

    code = "stage_unavailable"

    def __init__(self, stage: str, reason: str, fix: str = "") -> None:
        self.stage, self.reason, self.fix = stage, reason, fix
        tail = f" (fix: {fix})" if fix else ""
        super().__init__(f"stage {stage!r} unavailable: {reason}{tail}")


class FetchError(MonitorError):
    """A candidate URL could not be fetched (scheme, status, size or network)."""

    code = "fetch"


class NotFound(MonitorError):
    """A named gallery image, collection or source does not exist."""

    code = "not_found"


class StoreError(MonitorError):
    """The database cannot be used (schema newer than this code, locked, corrupt)."""

    code = "store"
