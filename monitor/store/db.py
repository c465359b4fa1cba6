"""Engine creation and schema migration (Alembic, run programmatically on open)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlmodel import create_engine

from monitor.errors import StoreError

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent first opens are not serialised
    fcntl = None  # type: ignore[assignment]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _create(url: str) -> Engine:
    """The engine for ``url``: SQLite with its pragmas (and its folder made), any other
    database with a liveness check on checkout (a restarted server's dead connections
    are replaced instead of failing the next request)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        sqlite = make_url(url).get_backend_name() == "sqlite"
        engine = create_engine(url) if sqlite else create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"cannot use database URL {_masked(url)}: {exc}{_hint(url, exc)}"
                         ) from exc
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a SQLAlchemy URL)"


def _hint(url: str, exc: Exception) -> str:
    if url.startswith(("postgres://", "postgresql://")) or "psycopg" in str(exc):
        return ("; for PostgreSQL write postgresql+psycopg://user:password@host/database "
                "and install the driver: pip install 'monitor[postgres]'")
    return ""


def open_engine(url: str) -> Engine:
    """Create the engine for ``url`` and upgrade its schema to the code's head.

    SQLite files get WAL journaling, foreign keys and a 30 s busy timeout; their
    parent folder is created. Processes opening a database that needs upgrading at the
    same time (a deployment's roles starting together) upgrade it once, one after the
    other: an advisory lock on PostgreSQL (per schema), a lock file next to SQLite's.

    Raises:
        StoreError: the URL is malformed or its driver missing, the database holds a
            revision this code does not know (written by a newer monitor), or it cannot
            be opened.
    """
    engine = _create(url)
    cfg = _alembic_config(url)
    heads = set(ScriptDirectory.from_config(cfg).get_heads())
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:  # noqa: BLE001 - any driver error means unusable
        raise StoreError(f"cannot open database {engine.url!r}: {exc}") from exc
    known = {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}
    if current is not None and current not in known:
        raise StoreError(
            f"database is at schema revision {current!r}, newer than this monitor "
            f"(head {sorted(heads)}); upgrade monitor"
        )
    if current not in heads:
        with _migration_lock(engine), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock("
                                  "hashtext('monitor.migrate ' || current_schema()))"))
            if MigrationContext.configure(conn).get_current_revision() not in heads:
                cfg.attributes["connection"] = conn  # another process may have done it
                command.upgrade(cfg, "head")
    return engine


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Hold ``<database>.migrate.lock`` (``flock``) around an SQLite upgrade, so processes
    opening a new database at once migrate it one after the other (PostgreSQL takes a
    transaction-scoped advisory lock instead)."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:" or fcntl is None:
        yield
        return
    with open(f"{path}.migrate.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ping(db: Engine) -> None:
    """Run ``SELECT 1``: returns when the database answers.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or read.
    """
    with db.connect() as conn:
        conn.execute(text("SELECT 1"))
