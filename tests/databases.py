"""The suite's database parameter: which tests run on which databases, and the PostgreSQL
schemas they run in. ``tests/conftest.py`` wires it in; its docstring says how to use it.

A test module listed in :data:`STORE_TESTS` touches the store (opens a Workspace, a Store
or an engine, runs the CLI on a deployment, starts a daemon): its tests, or the ones
named, are parametrized with ``db_backend`` = ``sqlite`` and ``postgresql``, except those
in :data:`SQLITE_ONLY`, which say why.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

DB_ENV = "MONITOR_STORAGE__DATABASE_URL"
"""The setting a ``[postgresql]`` test points at its schema (inherited by subprocesses)."""

ADMIN_URL = os.environ.get("MONITOR_TEST_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")
"""The PostgreSQL database whose schemas the ``[postgresql]`` tests use."""

BACKENDS = ("sqlite", "postgresql")

STORE_TESTS: dict[str, frozenset[str] | None] = {
    "test_api.py": None, "test_background_cli.py": None, "test_bad_input.py": None,
    "test_cli.py": None, "test_cli_width.py": None, "test_crawl.py": None,
    "test_daemon.py": None, "test_dashboard.py": None, "test_docs_offline.py": None,
    "test_exports.py": None, "test_exposure.py": None, "test_gallery_archive.py": None,
    "test_notify.py": None, "test_pipeline.py": None, "test_queue.py": None,
    "test_recorder.py": None, "test_report.py": None, "test_review.py": None,
    "test_schemathesis.py": None, "test_signing.py": None, "test_store.py": None,
    "test_workspace.py": None, "test_coordination.py": None, "test_blob_evidence.py": None,
    "test_snapshots.py": None,
    "test_sighting_context.py": None,
    "test_blobs.py": frozenset({"test_s3_workspace_keeps_gallery_and_uploads_in_the_bucket"}),
    "test_limits.py": frozenset({"test_concurrent_requests_limited_per_client_and_in_all",
                                 "test_metrics_size_stable_under_invented_methods",
                                 "test_concurrent_large_decodes_stay_under_the_budget"}),
}
"""Module file name → the tests in it that touch the store (None: all of them)."""

SQLITE_ONLY: dict[str, str] = {
    "test_cli_width.py::test_doctor": "checks that doctor names the SQLite file",
    "test_store.py::test_sqlite_file_and_its_folder_are_created":
        "checks the SQLite file and the folder open_engine makes for it",
    "test_limits.py::test_concurrent_large_decodes_stay_under_the_budget":
        "measures decode memory of two deployments in one test; one shared database "
        "would mix their galleries",
}
"""``module::test`` → why it runs on SQLite only."""

_OURS = frozenset({"db_backend", "module_database", "database_url"})


@dataclass(frozen=True)
class Database:
    """The database a test runs on: ``name`` (``sqlite``, ``postgresql``) and, for
    PostgreSQL, the URL of its schema (None for SQLite: one file per deployment)."""

    name: str
    url: str | None


class _Current:
    item: pytest.Item | None = None
    module_schema: str | None = None
    module_url: str | None = None
    db_fixtures: set[str] = set()
    shared: set[Path] = set()
    admin: Any = None
    error: str | None = None


CURRENT = _Current()
"""The test being set up, the module schema in force, and the admin connection."""


def backends() -> list[str]:
    """The databases chosen by ``MONITOR_TEST_DB`` (unset: both)."""
    choice = os.environ.get("MONITOR_TEST_DB", "").strip().lower()
    if choice in ("", "both"):
        return list(BACKENDS)
    if choice not in BACKENDS:
        raise pytest.UsageError(f"MONITOR_TEST_DB={choice!r}: use sqlite or postgresql "
                                "(unset runs both)")
    return [choice]


def generate_tests(metafunc: pytest.Metafunc) -> None:
    """``pytest_generate_tests``: parametrize ``db_backend`` for store-touching tests."""
    module, test = metafunc.definition.path.name, metafunc.function.__name__
    if module not in STORE_TESTS or f"{module}::{test}" in SQLITE_ONLY:
        return
    chosen = STORE_TESTS[module]
    if chosen is None or test in chosen:
        metafunc.parametrize("db_backend", backends(), indirect=True)


def backend(item: pytest.Item) -> str:
    """``sqlite`` or ``postgresql``: the database ``item`` runs on."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("db_backend", "sqlite") if callspec else "sqlite"


def _wide(scope: str) -> bool:
    return scope in ("module", "class", "package")


def _closure(item: pytest.Item) -> dict[str, Any]:
    return getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})


def shares_module_schema(item: pytest.Item) -> bool:
    """Whether ``item`` uses a module-scoped fixture that opened the module's schema (a
    deployment the module's tests share, as they share its SQLite file), so it runs in
    that schema rather than a fresh one of its own."""
    return item.path in CURRENT.shared and CURRENT.module_url is not None and any(
        name in CURRENT.db_fixtures for name in _closure(item))


def order(items: list[pytest.Item]) -> None:
    """Move ``[postgresql]`` tests after all the others (stable), so each module's
    module-scoped fixtures are torn down and built again for PostgreSQL; note the modules
    whose ``[postgresql]`` tests use module-scoped fixtures (they get a module schema)."""
    items.sort(key=lambda it: backend(it) == "postgresql")
    CURRENT.shared = {it.path for it in items if backend(it) == "postgresql" and any(
        name not in _OURS and fds and _wide(fds[-1].scope)
        for name, fds in _closure(it).items())}


def watch_fixture(name: str, scope: str) -> Any:
    """Around the setup of fixture ``name``: a callable that, called after it, records
    the fixture as one that opened the module schema (migrated it: tables appeared)."""
    if CURRENT.module_schema is None or name in _OURS or not _wide(scope):
        return lambda: None
    before = _tables(CURRENT.module_schema)

    def after() -> None:
        if before == 0 and CURRENT.module_schema and _tables(CURRENT.module_schema):
            CURRENT.db_fixtures.add(name)
    return after


def _tables(schema: str) -> int:
    return _admin().execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema = %s", (schema,)).fetchone()[0]


def module_url(item: pytest.Item) -> str:
    """The schema URL of ``item``'s module (made by :func:`module_schema`)."""
    assert CURRENT.module_url, f"no module schema for {item.nodeid}"
    return CURRENT.module_url


@contextmanager
def module_schema() -> Iterator[str | None]:
    """A schema for the module being set up when its ``[postgresql]`` tests share
    module-scoped deployments; yields its URL, or None when none is needed."""
    item = CURRENT.item
    if item is None or backend(item) != "postgresql" or item.path not in CURRENT.shared:
        yield None
        return
    with fresh_schema(f"mod_{item.path.stem}") as url:
        CURRENT.module_url, CURRENT.module_schema = url, _schema_of(url)
        CURRENT.db_fixtures = set()
        try:
            yield url
        finally:  # a later module's fixture of the same name is not this one
            CURRENT.module_url = CURRENT.module_schema = None
            CURRENT.db_fixtures = set()


def _schema_of(url: str) -> str:
    return make_url(url).query["application_name"]


def schema_url(schema: str) -> str:
    """:data:`ADMIN_URL` with ``search_path`` (and ``application_name``) set to ``schema``."""
    url = make_url(ADMIN_URL).update_query_dict(
        {"application_name": schema, "options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def _admin() -> Any:
    """An autocommit psycopg connection to :data:`ADMIN_URL`; fails the test (naming the
    URL) when the server cannot be reached, and every later one at once."""
    import psycopg

    if CURRENT.error:
        pytest.fail(CURRENT.error, pytrace=False)
    if CURRENT.admin is not None and not CURRENT.admin.closed:
        return CURRENT.admin
    url = make_url(ADMIN_URL)
    try:
        CURRENT.admin = psycopg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False),
            autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        CURRENT.error = (
            f"PostgreSQL is not reachable at {url.render_as_string(hide_password=True)}: "
            f"{str(exc).strip()}\nStart it, point MONITOR_TEST_POSTGRES_URL at a server, or "
            "set MONITOR_TEST_DB=sqlite to run only the SQLite variants.")
        pytest.fail(CURRENT.error, pytrace=False)
    CURRENT.admin.execute("SET lock_timeout = '30s'")
    return CURRENT.admin


@contextmanager
def fresh_schema(label: str) -> Iterator[str]:
    """Create an empty schema named after ``label``; yield its URL; then end every
    connection still using it and drop it with everything in it."""
    from psycopg import sql

    admin = _admin()
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    name = f"t{uuid.uuid4().hex[:8]}_{slug}"[:63]
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield schema_url(name)
    finally:
        admin = _admin()
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = %s AND pid <> pg_backend_pid()", (name,))
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
