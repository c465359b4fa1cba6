"""``monitor violations ...``: list recorded violations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from monitor import view
from monitor.workspace import Workspace


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``violations`` command to ``app``."""

    @app.command()
    @guarded
    def violations(
        status: Annotated[str | None, typer.Option(
            help="open, confirmed, dismissed, licensed.")] = None,
        jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per line.")] = False,
    ) -> None:
        """List recorded violations."""
        view.violations(workspace(), status, jsonl)
