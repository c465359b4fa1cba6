"""``monitor serve``, ``monitor worker``, ``monitor scheduler``: the daemon, whole or by role.

``monitor serve`` runs every part in one process (the embedded default). With a
broker (``queue.broker_url``) and a shared database, the parts run as separate
processes on one machine or many: ``monitor serve --role api`` (HTTP only), any number
of ``monitor worker`` and ``monitor scheduler`` (one is active; a second stands by).
"""

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
        role: Annotated[str, typer.Option(
            help="all: HTTP, workers and scheduler in this process; api: HTTP only (run "
                 "`monitor worker` and `monitor scheduler` beside it).")] = "all",
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
        if role not in ("all", "api"):
            raise ConfigError(f"--role {role!r}: use all or api (`monitor worker` and "
                              "`monitor scheduler` run the other roles)")
        raise typer.Exit(run(workspace(), str(config_file()), host, port, workers, tls, role))

    @app.command()
    @guarded
    def worker(
        threads: Annotated[int | None, typer.Option(
            help="Checks run at once in this process (server.workers).")] = None,
        metrics_port: Annotated[int | None, typer.Option(
            help="Serve Prometheus /metrics on this port (queue.metrics_port; 0: any "
                 "free port).")] = None,
    ) -> None:
        """Check queued candidates until SIGTERM: messages from queue.broker_url, or the
        job table itself when no broker is set. Start as many as the machines allow;
        each loads the indices once and follows gallery changes within
        queue.gallery_sync seconds.
        """
        from monitor.daemon import serve as run

        raise typer.Exit(run(workspace(), str(config_file()), workers=threads, role="worker",
                             metrics_port=metrics_port))

    @app.command()
    @guarded
    def scheduler(
        metrics_port: Annotated[int | None, typer.Option(
            help="Serve Prometheus /metrics on this port (queue.metrics_port; 0: any "
                 "free port).")] = None,
    ) -> None:
        """Run scheduled sources, the e-mail digest, alert senders and the queue sweep
        until SIGTERM. Safe to start two: a lock in the database keeps one active, the
        other takes over within queue.scheduler_ttl seconds if the first dies.
        """
        from monitor.daemon import serve as run

        raise typer.Exit(run(workspace(), str(config_file()), role="scheduler",
                             metrics_port=metrics_port))
