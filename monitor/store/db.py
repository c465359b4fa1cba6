"""Engine creation and schema migration (Alembic, run programmatically on open)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, text
from sqlmodel import create_engine

from monitor.errors import StoreError

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


def open_engine(url: str) -> Engine:
    """Create the engine for ``url`` and upgrade its schema to the code's head.

    SQLite files get WAL journaling, foreign keys and a 30 s busy timeout; their
    parent folder is created.

    Raises:
        StoreError: the database holds a revision this code does not know
            (written by a newer monitor), or cannot be opened.
    """
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
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
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return engine


def ping(db: Engine) -> None:
    """Run ``SELECT 1``: returns when the database answers.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or read.
    """
    with db.connect() as conn:
        conn.execute(text("SELECT 1"))
