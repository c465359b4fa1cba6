"""The daemon process: ``monitor serve`` (every part), or one role of several processes.

::

    scheduler tick ─┐                        (embedded: wake-up)
    HTTP POST      ─┴─► queue (Job rows) ─┬──────────────────────► N worker threads ─► check
                                          └─► broker message ────► `monitor worker` × N

Roles (:data:`ROLES`): ``all`` (``monitor serve``: HTTP, workers, scheduler),
``api`` (``monitor serve --role api``: HTTP only), ``worker`` (``monitor worker``)
and ``scheduler`` (``monitor scheduler``; exactly one active, :mod:`.scheduling`).
Without ``queue.broker_url`` the roles share the job table only (workers lease from it
directly, woken in-process or polling); with it, a Dramatiq message per job
(:mod:`.broker`) wakes the workers of any machine. Processes that match follow gallery
changes made elsewhere (:mod:`monitor.services.gallery_sync`).

* **Start**: load rules and the engine (indices) once, before any thread runs
  (roles that match); with the embedded queue, ``all`` puts every job left ``running``
  by a previous process back in the queue (one daemon per database); start the
  scheduler part (:class:`~monitor.daemon.scheduling.SchedulerPart`: schedules, sweep,
  alert senders, while it holds the lease), the workers, the gallery sync and uvicorn
  (in a thread, on a socket bound here so the real port is known and logged).
* **Stop**: SIGTERM or SIGINT set one :class:`threading.Event`. HTTP stops
  accepting, the scheduler resigns its lease, workers finish their current check (up
  to ``grace`` seconds; unfinished leases are released back to the queue), then the
  process exits 0. ``kill -9`` loses nothing either: accepted work is in the database,
  the sweep finds it again, and checks are idempotent.
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

ROLES = ("all", "api", "worker", "scheduler")
"""What a daemon process runs: every part, HTTP only, checks only, schedules only."""

HTTP_APP = "monitor.api:create_app"
"""The ASGI application factory served over HTTP, as an import string (the form
``uvicorn --factory`` takes); it is called with the daemon's :class:`AppState`. The
daemon layer names the HTTP face but does not import it."""


class Daemon:
    """The running parts of one daemon process; :meth:`start`, then :meth:`run_until_stopped`.

    Args:
        role: one of :data:`ROLES`.
    """

    def __init__(self, ws: Workspace, config_path: str, host: str | None = None,
                 port: int | None = None, workers: int | None = None,
                 grace: float = 30.0, app_factory: str = HTTP_APP, tls: Tls | None = None,
                 role: str = "all", metrics_port: int | None = None) -> None:
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        server = ws.settings.server
        self.ws, self.config_path, self.role = ws, config_path, role
        self.host = host or server.host
        self.port = server.port if port is None else port
        self.n_workers = server.workers if workers is None else workers
        self.grace, self.app_factory, self.tls = grace, app_factory, tls
        port_set = ws.settings.queue.metrics_port
        self.metrics_port = metrics_port if metrics_port is not None else (port_set or None)
        self.metrics_server = None
        self.stop = threading.Event()
        self.bound_port: int | None = None
        self.http = self.http_thread = self.workers = self.scheduling = None
        self.state = self.dispatcher = self.sync = None

    @property
    def serves_http(self) -> bool:
        """True for the roles with the HTTP API (``all``, ``api``)."""
        return self.role in ("all", "api")

    # -- start -----------------------------------------------------------------
    def start(self) -> None:
        """Start every part of the role; returns once the HTTP socket (if any) listens.

        Raises:
            ConfigError: signatures are required but no key is configured, a key's secret
                cannot be read or is weaker than 32 bytes, or signatures are
                off while listening beyond loopback (:mod:`monitor.daemon.exposure`).
            StageUnavailable: a required stage cannot load.
            OSError: the address cannot be bound.
        """
        from monitor.daemon.metrics import Metrics
        from monitor.daemon.state import AppState

        ws = self.ws
        secret, keys = self._keys() if self.serves_http else ("", {})
        wake = threading.Event()  # set after an enqueue: this process's idle workers look
        self.dispatcher = self._dispatcher(wake)
        if self.role != "scheduler":
            self._load_engine()
        if self.role == "all" and self.dispatcher.broker is None:
            recovered = queue.recover(ws.db, ws.settings.queue.max_attempts, all_running=True)
            log.info("recovered %d interrupted job(s); %d waiting", recovered,
                     queue.depth(ws.db))
        self.metrics = Metrics(depth=lambda: queue.depth(ws.db),
                               states=lambda: queue.counts(ws.db))
        self.state = AppState(ws, secret, self.metrics, extra_health=self.health,
                              batcher=queue.Batcher(ws.db) if self.serves_http else None,
                              keys=keys, dispatcher=self.dispatcher, wake=wake)
        self._start_parts()
        if self.serves_http:
            from uvicorn.importer import import_from_string

            self._start_http(import_from_string(self.app_factory)(self.state))
        elif self.metrics_port is not None:
            self._start_metrics()
        log.info("role %s started (queue: %s)", self.role,
                 "broker" if self.dispatcher.broker is not None else "embedded")

    def _keys(self):
        for warning in exposure_warnings(self.ws.settings, self.host, self.tls):
            log.warning(warning)
        server = self.ws.settings.server
        secret = self.ws.settings.secret(server.webhook_secret, server.webhook_secret_file)
        keys = keyring(self.ws.settings, secret or None)  # every key's secret read and vetted
        if server.require_signature and not keys:
            raise ConfigError("server.require_signature is on but no key is configured: set "
                              "MONITOR_SERVER__WEBHOOK_SECRET (e.g. `openssl rand -hex 32`), "
                              "server.webhook_secret_file, or [[server.keys]] tables")
        return secret, keys

    def _dispatcher(self, wake: threading.Event):
        from monitor.daemon.messages import Dispatcher

        url = self.ws.settings.queue.broker_url
        broker = None
        if url:
            from monitor.daemon.broker import Broker

            broker = Broker(self.ws.settings.queue)
        return Dispatcher(broker, wake).activate()

    def _load_engine(self) -> None:
        from monitor.services.gallery_sync import GallerySync
        from monitor.services.snapshots import restore

        _ = self.ws.rules
        restore(self.ws)  # a new machine: start from the published snapshot
        self.sync = GallerySync(self.ws, lambda: self.state.gallery_lock.write(),
                                save=self.role != "worker")
        self.sync.mark()
        engine = self.ws.engine()
        for s in engine.statuses():
            if s.enabled and not s.available:
                log.warning("stage %s unavailable: %s %s", s.name, s.reason, s.fix)

    def _start_parts(self) -> None:
        from monitor.daemon.scheduling import SchedulerPart

        if self.role in ("all", "scheduler"):
            self.scheduling = SchedulerPart(self.ws, self.config_path, self.dispatcher,
                                            self.stop, self.metrics)
            self.scheduling.start()
        if self.role in ("all", "worker"):
            self.workers = self._workers()
            self.workers.start()
        if self.sync is not None:
            self.sync.start(self.stop, self.ws.settings.queue.gallery_sync)

    def _workers(self):
        wake = self.scheduling.wake_sender if self.scheduling is not None else None
        broker = self.dispatcher.broker
        if broker is not None:
            from monitor.daemon.consumer import BrokerWorkers

            return BrokerWorkers(self.state, broker, self.n_workers, on_violation=wake)
        from monitor.daemon.worker import Workers

        return Workers(self.state, self.n_workers, self.stop,
                       self.ws.settings.queue.lease_seconds, on_violation=wake)

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

    def _start_metrics(self) -> None:
        """Serve this process's Prometheus registry at ``/metrics`` on ``metrics_port``
        (0: any free port) with prometheus_client's own server, for the roles without HTTP."""
        from prometheus_client import start_http_server

        self.metrics_server, _ = start_http_server(self.metrics_port, addr=self.host,
                                                   registry=self.metrics.registry)
        log.info("metrics at http://%s:%d/metrics", self.host, self.metrics_server.server_port)

    # -- status ------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Daemon parts for ``/healthz``: the role, the broker, the scheduler (this
        process's part, or who holds the lease) and this process's workers."""
        doc: dict[str, Any] = {"role": self.role}
        d = self.dispatcher
        if d is not None:
            doc["broker"] = {"ok": d.last_error is None, "error": d.last_error,
                             "kind": "embedded" if d.broker is None
                             else d.broker.url.split(":", 1)[0],
                             "sent": d.sent, "send_failures": d.failed}
        if self.scheduling is not None:
            doc["scheduler"] = self.scheduling.health()
        else:  # another process's part: is one active? (sweeps and schedules need one)
            from monitor.daemon.scheduling import elsewhere

            doc["scheduler"] = elsewhere(self.ws)
        if self.workers is not None:
            alive = self.workers.alive()
            doc["workers"] = {"ok": alive == self.n_workers, "alive": alive,
                              "configured": self.n_workers}
        if self.sync is not None:
            doc["gallery_version"] = self.sync.version
        return doc

    # -- stop ----------------------------------------------------------------------
    def run_until_stopped(self) -> None:
        """Block until :attr:`stop` is set (signal, or HTTP server ended), then shut down."""
        while not self.stop.wait(0.5):
            pass
        self.shutdown()

    def shutdown(self) -> None:
        """Stop HTTP, scheduler, workers (release unfinished leases) and the senders."""
        self.stop.set()
        log.info("stopping")
        if self.http is not None:
            self.http.should_exit = True
        if self.http_thread is not None:
            self.http_thread.join(15.0)
        if self.state is not None and self.state.batcher is not None:
            self.state.batcher.close()
        if self.scheduling is not None:
            self.scheduling.shutdown()
        if self.workers is not None:
            left = self.workers.join(self.grace)
            if left:
                log.warning("released %d unfinished job(s) back to the queue", len(left))
        if self.dispatcher is not None:
            self.dispatcher.close()
            if self.dispatcher.broker is not None:
                self.dispatcher.broker.stop(1.0)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        log.info("stopped")


def serve(ws: Workspace, config_path: str | Path, host: str | None = None,
          port: int | None = None, workers: int | None = None, tls: Tls | None = None,
          role: str = "all", metrics_port: int | None = None) -> int:
    """Run a daemon of ``role`` in this process until SIGTERM/SIGINT; returns the exit
    code (0).

    Raises:
        ConfigError, StageUnavailable, OSError: see :meth:`Daemon.start`.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    daemon = Daemon(ws, str(config_path), host, port, workers, tls=tls, role=role,
                    metrics_port=metrics_port)

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
