"""Shared fixtures: real photos from scikit-image, an isolated workspace, and the database
every store-touching test runs on.

The database parameter (:mod:`tests.databases`): each test of a module listed in
``tests/databases.py`` (it opens a Workspace, a Store or an engine, runs the CLI on a
deployment, or starts a daemon) runs twice, as ``test[sqlite]`` and ``test[postgresql]``.

* ``sqlite``: the default, one ``<data_dir>/monitor.db`` per deployment.
* ``postgresql``: a fresh schema on the server at ``$MONITOR_TEST_POSTGRES_URL`` (default
  ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), dropped afterwards, named by
  ``MONITOR_STORAGE__DATABASE_URL`` (set with monkeypatch, so ``monitor`` subprocesses
  inherit it). A test that uses a module-scoped fixture which opened the database (a
  daemon the module shares) shares that module's schema, as it shares the SQLite file.
  The ``[postgresql]`` tests run after all the others, so module-scoped daemons are built
  once per database.

Tests named in ``databases.SQLITE_ONLY`` run once, on SQLite, each with its reason.
``MONITOR_TEST_DB=sqlite`` limits the parameter to ``sqlite`` (no server needed);
``MONITOR_TEST_DB=postgresql`` to ``postgresql``. Otherwise an unreachable server fails
every ``[postgresql]`` test with a message naming the URL; nothing is skipped silently.
A ``MONITOR_STORAGE__DATABASE_URL`` in the caller's environment is ignored. The
``database_url`` fixture gives tests that open an engine themselves the URL to use.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import databases
from tests.databases import Database

pytest_generate_tests = databases.generate_tests

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
          "immunohistochemistry")
OTHERS = ("camera", "coins", "moon", "page", "horse", "brick", "grass", "clock")


def skimage_photo(name: str) -> Image.Image:
    """A real image bundled in scikit-image's wheel, as RGB."""
    import skimage.data

    arr = getattr(skimage.data, name)().astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """Colour photos used as the protected gallery."""
    return {n: skimage_photo(n) for n in PHOTOS}


@pytest.fixture(scope="session")
def others() -> dict[str, Image.Image]:
    """Real images that are not in the gallery (distractors)."""
    return {n: skimage_photo(n) for n in OTHERS}


def encode(im: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    """Bytes of ``im`` saved as ``fmt``."""
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub downloads, and no config from the caller's environment."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)


@pytest.fixture
def deploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty deployment folder as the working directory."""
    root = tmp_path / "deploy"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def pytest_configure(config: pytest.Config) -> None:
    """A database URL from the caller's environment would send every test to one database:
    tests choose theirs (``db_backend``)."""
    os.environ.pop(databases.DB_ENV, None)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``[postgresql]`` tests after all the others (see the module docstring)."""
    databases.order(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember the test being set up: module-scoped database fixtures read it."""
    databases.CURRENT.item = item


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    """Note the module-scoped fixtures that open the module's PostgreSQL schema."""
    after = databases.watch_fixture(fixturedef.argname, fixturedef.scope)
    result = yield
    after()
    return result


@pytest.fixture(scope="module", autouse=True)
def module_database() -> Iterator[None]:
    """The module's schema in ``[postgresql]`` runs of modules whose tests share a
    module-scoped deployment; nothing otherwise."""
    with databases.module_schema() as url:
        if url is None:
            yield
            return
        mp = pytest.MonkeyPatch()
        mp.setenv(databases.DB_ENV, url)
        try:
            yield
        finally:
            mp.undo()


@pytest.fixture(autouse=True)
def db_backend(request: pytest.FixtureRequest,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The database this test runs on (``sqlite`` unless parametrized; see the module
    docstring). ``[postgresql]`` tests get a fresh schema, or their module's."""
    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        yield Database("sqlite", None)
        return
    if databases.shares_module_schema(request.node):
        yield Database("postgresql", databases.module_url(request.node))
        return
    with databases.fresh_schema(request.node.name) as url:
        monkeypatch.setenv(databases.DB_ENV, url)
        yield Database("postgresql", url)


@pytest.fixture
def database_url(db_backend: Database, tmp_path: Path) -> str:
    """A SQLAlchemy URL for a test that opens its own engine: SQLite under ``tmp_path``, or
    the test's PostgreSQL schema."""
    return db_backend.url or f"sqlite:///{tmp_path / 'monitor.db'}"
