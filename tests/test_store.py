"""Database: migrations create the schema, reopening is idempotent, newer schemas refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect

from monitor.errors import StoreError
from monitor.store.db import open_engine
from monitor.store.models import SCHEMA_REVISION


def test_migrate_creates_tables_and_reopens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'm.db'}"
    engine = open_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {"collection", "protectedimage", "candidate", "match", "violation", "scan",
            "alembic_version"} <= tables
    open_engine(url)
    rev = sqlite3.connect(tmp_path / "sub" / "m.db").execute(
        "select version_num from alembic_version").fetchall()
    assert rev == [(SCHEMA_REVISION,)]


def test_newer_schema_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    open_engine(url).dispose()
    con = sqlite3.connect(tmp_path / "m.db")
    con.execute("update alembic_version set version_num = '9999'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="9999"):
        open_engine(url)


def test_upgrade_from_0001_keeps_data(tmp_path: Path) -> None:
    from alembic import command

    from monitor.store.db import _alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(_alembic_config(url), "0001")
    con = sqlite3.connect(tmp_path / "old.db")
    con.execute("insert into collection (name, created_at) values ('kept', '2026-01-01')")
    con.commit()
    con.close()
    engine = open_engine(url)
    names = {t for t in inspect(engine).get_table_names()}
    assert {"job", "fetchcache", "violationevent", "alert"} <= names
    cols = {c["name"] for c in inspect(engine).get_columns("candidate")}
    assert {"http_status", "headers_json", "source_name"} <= cols
    assert "agreement" in {c["name"] for c in inspect(engine).get_columns("match")}  # 0003
    with engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("select name from collection")).scalar() == "kept"
