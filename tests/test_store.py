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
