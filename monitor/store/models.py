"""Database schema (SQLModel). The database is the source of truth; indices are caches.

Schema changes go through Alembic migrations in ``monitor/migrations/versions``;
:data:`SCHEMA_REVISION` names the head this code expects.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

SCHEMA_REVISION = "0008"
"""Alembic head revision this code was written against."""


ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
"""Type of row ids and the columns that refer to them: 64-bit, as SQLite's ``INTEGER``
rowids are. PostgreSQL compares (and binds) ids as ``BIGINT`` whatever the column's width,
so an id beyond 2**31 asked for (an API path, a CLI argument) names nothing there too
instead of failing as out of range for ``INTEGER``."""


def utcnow() -> datetime:
    """Timezone-aware now in UTC (SQLModel's ``UTCDateTime`` refuses naive values)."""
    return datetime.now(UTC)


class Collection(SQLModel, table=True):
    """A named set of protected images (a portfolio, a SKU catalogue)."""

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    name: str = Field(index=True, unique=True)
    created_at: datetime = Field(default_factory=utcnow)


class ProtectedImage(SQLModel, table=True):
    """A gallery (reference) image with its stored signals.

    ``phash`` holds the 8 dihedral 64-bit pHashes as 128 hex characters;
    ``clip_vector`` a float32 embedding (bytes) tagged by ``clip_model``;
    ``descriptor_vector`` the ``(512,) float32`` SSCD embedding tagged by ``descriptor_model``.
    ``stored_path`` is the content-addressed copy under the data folder, from
    which every other signal can be rebuilt.
    """

    __table_args__ = (UniqueConstraint("collection_id", "sha256"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    collection_id: int = Field(foreign_key="collection.id", index=True, sa_type=ROW_ID)
    path: str
    stored_path: str
    sha256: str = Field(index=True)
    size_bytes: int
    width: int
    height: int
    format: str
    meta_json: str = "{}"
    phash: str
    clip_vector: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    clip_model: str | None = None
    descriptor_vector: bytes | None = Field(default=None,
                                            sa_column=Column(LargeBinary, nullable=True))
    descriptor_model: str | None = None
    added_at: datetime = Field(default_factory=utcnow)
    archived_at: datetime | None = Field(default=None, index=True)
    archived_by: str | None = None


class Scan(SQLModel, table=True):
    """One run over a source (folder, URL list, CLI check)."""

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    source: str
    kind: str = "folder"
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    status: str = "running"
    checked: int = 0
    violations: int = 0
    errors: int = 0
    stages_note: str = ""


class Candidate(SQLModel, table=True):
    """One image seen somewhere. Written as ``pending`` before it is processed.

    ``context_json``: how it appeared where it was last seen with context, a JSON object
    of ``page_title``, ``alt``, ``image_title``, ``caption`` (plain text, each capped).
    """

    __table_args__ = (UniqueConstraint("source", "sha256"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    scan_id: int | None = Field(default=None, foreign_key="scan.id", index=True, sa_type=ROW_ID)
    source: str = Field(index=True)
    page_url: str | None = None
    sha256: str | None = Field(default=None, index=True)
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    evidence_path: str | None = None
    status: str = Field(default="pending", index=True)
    verdict: str | None = None
    error_code: str | None = None
    error: str | None = None
    http_status: int | None = None
    headers_json: str | None = None
    source_name: str | None = None
    context_json: str | None = None
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    checked_at: datetime | None = None


class MatchRow(SQLModel, table=True):
    """Candidate × protected image with every stage's evidence.

    ``similarity``/``normalised``: SSCD cosine, raw and score-normalised;
    ``query_overlap``/``target_overlap``: share in [0, 1] of the candidate that is the copy
    and of the protected image that was copied; ``target_region_json`` the copied part of
    the protected image, ``[x0, y0, x1, y1]`` in its own pixels.
    """

    __tablename__ = "match"
    __table_args__ = (UniqueConstraint("candidate_id", "protected_id"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    candidate_id: int = Field(foreign_key="candidate.id", index=True, sa_type=ROW_ID)
    protected_id: int = Field(foreign_key="protectedimage.id", index=True, sa_type=ROW_ID)
    stage: str
    score: float
    distance: int | None = None
    cosine: float | None = None
    inliers: int | None = None
    agreement: float | None = None
    similarity: float | None = None
    normalised: float | None = None
    query_overlap: float | None = None
    target_overlap: float | None = None
    target_region_json: str | None = None
    region_json: str | None = None
    quad_json: str | None = None
    mirrored: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class Violation(SQLModel, table=True):
    """A match the rules flagged, with its review state."""

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    match_id: int = Field(foreign_key="match.id", unique=True, sa_type=ROW_ID)
    candidate_id: int = Field(foreign_key="candidate.id", index=True, sa_type=ROW_ID)
    protected_id: int = Field(foreign_key="protectedimage.id", index=True, sa_type=ROW_ID)
    verdict: str
    rule: str
    severity: str
    status: str = Field(default="open", index=True)
    note: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    """The durable queue: one unit of work for the daemon's workers.

    ``kind`` is ``submission`` (HTTP), ``crawl`` (a URL found by a source) or
    ``file`` (a folder source). Workers lease a job (``lease_until``); a job
    whose lease ran out (a killed process) is taken again, so nothing is lost.
    """

    id: str = Field(primary_key=True)
    kind: str
    source: str = "api"
    url: str | None = None
    page_url: str | None = None
    path: str | None = None
    metadata_json: str = "{}"
    sha256: str | None = Field(default=None, index=True)
    idempotency_key: str | None = Field(default=None, unique=True)
    status: str = Field(default="queued", index=True)
    attempts: int = 0
    not_before: datetime | None = None
    lease_until: datetime | None = None
    error: str | None = None
    candidate_id: int | None = Field(default=None, foreign_key="candidate.id", sa_type=ROW_ID)
    scan_id: int | None = Field(default=None, foreign_key="scan.id", sa_type=ROW_ID)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class FetchCache(SQLModel, table=True):
    """Validators of the last fetch of a URL, for conditional requests."""

    url: str = Field(primary_key=True)
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    status: int | None = None
    fetched_at: datetime = Field(default_factory=utcnow)


class ViolationEvent(SQLModel, table=True):
    """Audit trail of review-status changes: who, when, from, to, and why."""

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    violation_id: int = Field(foreign_key="violation.id", index=True, sa_type=ROW_ID)
    at: datetime = Field(default_factory=utcnow)
    actor: str
    from_status: str
    to_status: str
    note: str = ""


class Alert(SQLModel, table=True):
    """One outgoing notification (immediate mail, digest or webhook) and its delivery state.

    Unique on (kind, violation_id) so a violation is never alerted twice per channel.
    """

    __table_args__ = (UniqueConstraint("kind", "violation_id"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    kind: str
    violation_id: int | None = Field(default=None, foreign_key="violation.id", sa_type=ROW_ID)
    period_start: datetime | None = None
    period_end: datetime | None = None
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    error: str | None = None
    recipients: str = ""
    sent_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Nonce(SQLModel, table=True):
    """A request nonce seen within the signature window (replay cache, shared by every
    process on the database). Rows older than the window may be deleted."""

    key_id: str = Field(primary_key=True)
    nonce: str = Field(primary_key=True)
    seen_at: datetime = Field(default_factory=utcnow, index=True)
