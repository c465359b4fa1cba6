"""``monitor serve``: one process running the HTTP API, the scheduler and the queue workers.

::

    scheduler tick ─┐
    HTTP POST      ─┴─► queue (Job rows) ─► N worker threads ─► check ─► webhook sender

* **Start**: load rules and the engine (indices) once, before any thread
  runs; put every job left ``running`` by a previous process back in the
  queue (:func:`monitor.store.queue.recover` with ``all_running``: one daemon per
  database); start the scheduler (job store in the same database), the
  workers, the webhook sender, a maintenance thread (expired leases back to
  the queue every :data:`MAINTENANCE_EVERY` s) and uvicorn (in a thread, on
  a socket bound here so the real port is known and logged).
* **Stop**: SIGTERM or SIGINT set one :class:`threading.Event`. HTTP stops
  accepting, the scheduler stops, workers finish their current check (up to
  ``grace`` seconds; unfinished leases are released back to the queue), then
  the process exits 0. ``kill -9`` loses nothing either: accepted work is in
  the database and checks are idempotent.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from monitor.daemon.exposure import Tls, exposure_warnings
from monitor.errors import ConfigError
from monitor.services.signing import keyring
from monitor.services.workspace import Workspace
from monitor.store import queue

log = logging.getLogger("monitor.daemon")

MAINTENANCE_EVERY = 30.0
"""Seconds between passes that recover expired leases."""

LEASE_SECONDS = 300.0
"""How long a worker holds a job before it may be taken again (seconds)."""

HTTP_APP = "monitor.api:create_app"
"""The ASGI application factory served over HTTP, as an import string (the form
``uvicorn --factory`` takes); it is called with the daemon's :class:`AppState`. The
daemon layer names the HTTP face but does not import it."""


class Daemon:
    """The running parts of ``monitor serve``; :meth:`start`, then :meth:`run_until_stopped`."""

    def __init__(self, ws: Workspace, config_path: str, host: str | None = None,
                 port: int | None = None, workers: int | None = None,
                 grace: float = 30.0, app_factory: str = HTTP_APP, tls: Tls | None = None
                 ) -> None:
        server = ws.settings.server
        self.ws, self.config_path = ws, config_path
        self.host = host or server.host
        self.port = server.port if port is None else port
        self.n_workers = server.workers if workers is None else workers
        self.grace, self.app_factory, self.tls = grace, app_factory, tls
        self.stop = threading.Event()
        self.bound_port: int | None = None

    # -- start -----------------------------------------------------------------
    def start(self) -> None:
        """Start every part; returns once the HTTP socket is listening.

        Raises:
            ConfigError: signatures are required but no key is configured, a key's secret
                cannot be read or is weaker than 32 bytes, or signatures are
                off while listening beyond loopback (:mod:`monitor.daemon.exposure`).
            StageUnavailable: a required stage cannot load.
            OSError: the address cannot be bound.
        """
        from uvicorn.importer import import_from_string

        for warning in exposure_warnings(self.ws.settings, self.host, self.tls):
            log.warning(warning)

        from monitor.daemon.metrics import Metrics
        from monitor.daemon.schedule import build_scheduler, sync_sources
        from monitor.daemon.state import AppState
        from monitor.daemon.worker import Workers
        from monitor.outcome.webhooks import WebhookSender

        ws, server = self.ws, self.ws.settings.server
        secret = ws.settings.secret(server.webhook_secret, server.webhook_secret_file)
        keys = keyring(ws.settings, secret or None)  # every key's secret read and vetted now
        if server.require_signature and not keys:
            raise ConfigError("server.require_signature is on but no key is configured: set "
                              "MONITOR_SERVER__WEBHOOK_SECRET (e.g. `openssl rand -hex 32`), "
                              "server.webhook_secret_file, or [[server.keys]] tables")
        _ = ws.rules
        engine = ws.engine()
        for s in engine.statuses():
            if s.enabled and not s.available:
                log.warning("stage %s unavailable: %s %s", s.name, s.reason, s.fix)
        recovered = queue.recover(ws.db, all_running=True)
        log.info("recovered %d interrupted job(s); %d waiting", recovered, queue.depth(ws.db))

        self.metrics = Metrics(depth=lambda: queue.depth(ws.db))
        self.state = AppState(ws, secret, self.metrics, extra_health=self.health,
                              batcher=queue.Batcher(ws.db), keys=keys)
        self.sender = WebhookSender(ws, self.stop, self.metrics)
        self.workers = Workers(self.state, self.n_workers, self.stop, LEASE_SECONDS,
                               on_violation=self.sender.wake.set)
        self.scheduler = build_scheduler(ws.db)
        self.scheduler.start(paused=True)
        jobs = sync_sources(self.scheduler, ws.settings, self.config_path)
        self.scheduler.resume()
        log.info("scheduled sources: %s", ", ".join(jobs) or "none")
        self.workers.start()
        self.sender.start()
        threading.Thread(target=self._maintenance, name="maintenance", daemon=True).start()
        self._start_http(import_from_string(self.app_factory)(self.state))

    def _start_http(self, app) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        self.bound_port = sock.getsockname()[1]
        tls = dict(ssl_certfile=self.tls.certfile, ssl_keyfile=self.tls.keyfile) if self.tls \
            else {}
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=10, backlog=2048, **tls)
        self.http = uvicorn.Server(config)

        def run() -> None:
            try:
                self.http.run(sockets=[sock])
            finally:
                self.stop.set()

        self.http_thread = threading.Thread(target=run, name="http", daemon=True)
        self.http_thread.start()
        log.info("listening on %s://%s:%d (OpenAPI at /docs)", "https" if self.tls else "http",
                 self.host, self.bound_port)

    def _maintenance(self) -> None:
        while not self.stop.wait(MAINTENANCE_EVERY):
            try:
                if n := queue.recover(self.ws.db):
                    log.warning("recovered %d job(s) whose lease ran out", n)
                    self.state.wake.set()
            except Exception:  # noqa: BLE001 - retried next pass
                log.exception("lease recovery failed")
            self._send_alerts()

    def _send_alerts(self) -> None:
        """Deliver pending immediate e-mail alerts (outbox), when SMTP is configured."""
        if not self.ws.settings.smtp.host:
            return
        from monitor.outcome.notify import send_pending_alerts

        try:
            if n := send_pending_alerts(self.ws):
                log.info("sent %d alert(s)", n)
        except Exception:  # noqa: BLE001 - alerts record their own failures; retried
            log.exception("alert delivery failed")

    # -- status ------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Daemon parts for ``/healthz``: scheduler state and jobs, live worker count."""
        jobs = [{"id": j.id, "next_run_time": j.next_run_time.isoformat()
                 if j.next_run_time else None} for j in self.scheduler.get_jobs()]
        alive = self.workers.alive()
        return {"scheduler": {"ok": bool(self.scheduler.running), "jobs": jobs},
                "workers": {"ok": alive == self.n_workers, "alive": alive,
                            "configured": self.n_workers}}

    # -- stop ----------------------------------------------------------------------
    def run_until_stopped(self) -> None:
        """Block until :attr:`stop` is set (signal, or HTTP server ended), then shut down."""
        while not self.stop.wait(0.5):
            pass
        self.shutdown()

    def shutdown(self) -> None:
        """Stop HTTP, scheduler, workers (release unfinished leases) and the webhook sender."""
        self.stop.set()
        log.info("stopping")
        if getattr(self, "http", None) is not None:
            self.http.should_exit = True
        if getattr(self, "http_thread", None) is not None:
            self.http_thread.join(15.0)
        if getattr(self, "state", None) is not None and self.state.batcher is not None:
            self.state.batcher.close()
        if getattr(self, "scheduler", None) is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if getattr(self, "workers", None) is not None:
            left = self.workers.join(self.grace)
            if left:
                log.warning("released %d unfinished job(s) back to the queue", len(left))
        if getattr(self, "sender", None) is not None:
            self.sender.join(5.0)
        log.info("stopped")


def serve(ws: Workspace, config_path: str | Path, host: str | None = None,
          port: int | None = None, workers: int | None = None, tls: Tls | None = None) -> int:
    """Run the daemon in this process until SIGTERM/SIGINT; returns the exit code (0).

    Raises:
        ConfigError, StageUnavailable, OSError: see :meth:`Daemon.start`.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    daemon = Daemon(ws, str(config_path), host, port, workers, tls=tls)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        daemon.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        daemon.start()
    except BaseException:
        daemon.shutdown()
        raise
    daemon.run_until_stopped()
    return 0
