"""``monitor serve``: the daemon (HTTP API, scheduler, queue workers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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
        ssl_certfile: Annotated[Path | None, typer.Option(
            help="PEM certificate chain: serve HTTPS (with --ssl-keyfile).")] = None,
        ssl_keyfile: Annotated[Path | None, typer.Option(
            help="PEM private key of --ssl-certfile.")] = None,
    ) -> None:
        """Run the daemon: HTTP API, scheduled sources and queue workers, until SIGTERM.

        Beyond loopback, serve HTTPS (--ssl-certfile/--ssl-keyfile) or put a TLS proxy in
        front; unsigned /v1 routes (server.require_signature = false) are refused there.
        """
        from monitor.daemon import serve as run
        from monitor.daemon.exposure import Tls
        from monitor.errors import ConfigError

        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
        tls = Tls(str(ssl_certfile), str(ssl_keyfile)) if ssl_certfile and ssl_keyfile else None
        raise typer.Exit(run(workspace(), str(config_file()), host, port, workers, tls))
