"""Persistence: engine and sessions, models, migrations, and the repositories that are
the only code writing SQL. :class:`Store` is one deployment's database and files."""

from monitor.store.context import Store, write_atomic

__all__ = ["Store", "write_atomic"]
