"""``monitor serve``: the daemon (HTTP API, scheduler, queue workers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from monitor.cli.context import config_file
from monitor.services.workspace import Workspace


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``serve`` command to ``app``."""

    @app.command()
    @guarded
    def serve(
        host: Annotated[str | None, typer.Option(help="Listen address (server.host).")] = None,
        port: Annotated[int | None, typer.Option(
            help="TCP port (server.port); 0 picks a free one, logged at start.")] = None,
        workers: Annotated[int | None, typer.Option(
            help="Queue worker threads (server.workers).")] = None,
    ) -> None:
        """Run the daemon: HTTP API, scheduled sources and queue workers, until SIGTERM."""
        from monitor.daemon import serve as run

        raise typer.Exit(run(workspace(), str(config_file()), host, port, workers))
