"""``monitor serve``: the daemon (HTTP API, scheduler, queue workers)."""

from __future__ import annotations

from collections.abc import Callable

import typer

from monitor.workspace import Workspace


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``serve`` command to ``app`` (not built yet)."""
