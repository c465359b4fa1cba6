"""Alembic environment: uses the connection handed over by ``monitor.store.db``."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from monitor.store import models  # noqa: F401  (registers tables on the metadata)

config = context.config
target_metadata = SQLModel.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _migrate(connection)
    else:
        _migrate(connection)


def _include(obj, name, type_, reflected, compare_to) -> bool:
    """Leave APScheduler's own ``apscheduler_jobs`` table out of autogenerate."""
    return not (type_ == "table" and name == "apscheduler_jobs")


def _migrate(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, include_object=_include)
    with context.begin_transaction():
        context.run_migrations()


run()
