"""Database: migrations create the schema, reopening is idempotent, newer schemas refused."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from monitor.errors import StoreError
from monitor.store.db import open_engine
from monitor.store.models import SCHEMA_REVISION


def test_migrate_creates_tables_and_reopens(database_url: str) -> None:
    engine = open_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    assert {"collection", "protectedimage", "candidate", "match", "violation", "scan",
            "alembic_version"} <= tables
    engine.dispose()
    again = open_engine(database_url)
    with again.connect() as conn:
        rev = conn.execute(text("select version_num from alembic_version")).all()
    again.dispose()
    assert [tuple(r) for r in rev] == [(SCHEMA_REVISION,)]


def test_newer_schema_refused(database_url: str) -> None:
    engine = open_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="9999"):
        open_engine(database_url)


def test_upgrade_from_0001_keeps_data(database_url: str) -> None:
    from alembic import command

    from monitor.store.db import _alembic_config

    command.upgrade(_alembic_config(database_url), "0001")
    raw = create_engine(database_url)
    with raw.begin() as conn:
        conn.execute(text("insert into collection (name, created_at) "
                          "values ('kept', '2026-01-01 00:00:00+00:00')"))
    raw.dispose()
    engine = open_engine(database_url)
    names = {t for t in inspect(engine).get_table_names()}
    assert {"job", "fetchcache", "violationevent", "alert"} <= names
    cols = {c["name"] for c in inspect(engine).get_columns("candidate")}
    assert {"http_status", "headers_json", "source_name"} <= cols
    assert "agreement" in {c["name"] for c in inspect(engine).get_columns("match")}  # 0003
    with engine.connect() as conn:
        assert conn.execute(text("select name from collection")).scalar() == "kept"
    engine.dispose()


def _open_when(url: str, start, out) -> None:
    out.put("ready")
    start.wait(60)
    try:
        open_engine(url).dispose()
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_database_at_once_migrate_it_once(database_url: str) -> None:
    """Roles of one deployment starting together on an empty database: every one opens
    it, none trips over another's half-done migration."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_open_when, args=(database_url, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    try:
        assert [out.get(timeout=120) for _ in procs] == ["ready"] * 4
        start.set()
        answers = [out.get(timeout=120) for _ in procs]
    finally:
        start.set()
        for p in procs:
            p.join(60)
    assert answers == ["ok"] * 4
    engine = open_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).all() == [
            (SCHEMA_REVISION,)]
    engine.dispose()


def test_sqlite_file_and_its_folder_are_created(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "m.db"
    open_engine(f"sqlite:///{path}").dispose()
    rev = sqlite3.connect(path).execute("select version_num from alembic_version").fetchall()
    assert rev == [(SCHEMA_REVISION,)]


def test_row_ids_are_64_bit(database_url: str) -> None:
    """Ids (and the columns referring to them) hold values past 2**31: PostgreSQL's
    columns and sequences are BIGINT after migration 0008; SQLite's rowids always were."""
    engine = open_engine(database_url)
    big = 2**40
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            types = dict(conn.execute(text(
                "select table_name || '.' || column_name, data_type from "
                "information_schema.columns where table_schema = current_schema() and "
                "(column_name = 'id' or column_name like '%\\_id')")).all())
            for col in ("collection.id", "protectedimage.collection_id", "match.protected_id",
                        "violation.match_id", "job.candidate_id", "violationevent.violation_id"):
                assert types[col] == "bigint", (col, types[col])
            conn.execute(text("select setval(pg_get_serial_sequence('collection', 'id'), :v)"),
                         {"v": big})
        else:
            conn.execute(text("insert into collection (id, name, created_at) "
                              "values (:v, 'seed', '2026-01-01 00:00:00+00:00')"), {"v": big})
        conn.execute(text("insert into collection (name, created_at) "
                          "values ('next', '2026-01-01 00:00:00+00:00')"))
        new_id = conn.execute(text("select id from collection where name = 'next'")).scalar()
        conn.execute(text(
            "insert into protectedimage (collection_id, path, stored_path, sha256, size_bytes,"
            " width, height, format, meta_json, phash, added_at) values (:c, 'p', 's', 'h', 1,"
            " 1, 1, 'PNG', '{}', '00', '2026-01-01 00:00:00+00:00')"), {"c": new_id})
        kept = conn.execute(text("select collection_id from protectedimage")).scalar()
    engine.dispose()
    assert new_id == kept == big + 1
