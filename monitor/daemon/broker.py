"""The task-queue broker between roles: Dramatiq over Redis or RabbitMQ.

Chosen over Celery for this job: a message here is one job id, and the database does
the bookkeeping (leases, attempts, backoff, the ``error`` dead-letter state), so what
is wanted of the queue library is at-least-once delivery and little else. Dramatiq
acknowledges a message only after its actor returns (Celery acknowledges on receipt
unless ``acks_late`` is set, and its Redis transport redelivers unacknowledged
messages only after a one-hour visibility timeout), requeues the messages of a dead
worker (Redis: heartbeats, 60 s; RabbitMQ: the channel closes), speaks both brokers
with one API, and runs in-process as a :class:`dramatiq.Worker` with threads, which
lets a ``monitor worker`` load its indices once and share them between its threads.

One actor, ``check_job(job_id)``, on queue ``queue.name``. Its Dramatiq retries are
off (``max_retries=0``): a failed check is retried by the database's backoff
(:func:`monitor.store.queue.fail`) and a new message sent with that delay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from monitor.config.queue import QueueSettings

log = logging.getLogger("monitor.broker")

ACTOR = "check_job"
"""Dramatiq actor name of the check message."""


def amqp_url(url: str) -> str:
    """``url`` in the form pika reads: the default virtual host written ``//`` (as Celery
    and kombu write it, ``amqp://guest:guest@host:5672//``) becomes ``/%2F``; pika would
    read ``//`` as a virtual host named "" and be refused (530 NOT_ALLOWED)."""
    head, sep, tail = url.partition("://")
    host, slash, vhost = tail.partition("/")
    if slash and vhost == "/":
        return f"{head}{sep}{host}/%2F"
    return url


def probe(url: str, timeout: float = 3.0) -> str | None:
    """Connect to broker ``url`` and leave; None when it answered, else the error (for
    ``monitor doctor``)."""
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=timeout,
                                          socket_timeout=timeout)
            client.ping()
            client.close()
        else:
            import pika

            logging.getLogger("pika").setLevel(logging.CRITICAL)
            params = pika.URLParameters(amqp_url(url))
            params.socket_timeout = params.blocked_connection_timeout = timeout
            pika.BlockingConnection(params).close()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"{type(exc).__name__}: {exc}" or type(exc).__name__
    return None


class Broker:
    """A connection to ``settings.broker_url`` with the check actor declared.

    Attributes:
        url: the broker URL (``redis://…`` or ``amqp://…``).
        queue_name: the queue check messages go to.

    Raises:
        ConfigError: the URL's scheme is not Redis or AMQP (checked by the settings).
    """

    def __init__(self, settings: QueueSettings) -> None:
        import dramatiq

        self.url, self.queue_name = settings.broker_url, settings.name
        if self.url.startswith(("redis://", "rediss://")):
            from dramatiq.brokers.redis import RedisBroker

            self.broker = RedisBroker(url=self.url)
        else:
            from dramatiq.brokers.rabbitmq import RabbitmqBroker

            logging.getLogger("pika").setLevel(logging.WARNING)  # a line per socket event
            self.broker = RabbitmqBroker(url=amqp_url(self.url), confirm_delivery=True)
        self._handler: Callable[[str], None] | None = None
        self.actor = dramatiq.actor(self._run, actor_name=ACTOR, queue_name=self.queue_name,
                                    broker=self.broker, max_retries=0,
                                    time_limit=int(settings.lease_seconds * 1000))
        self._worker: Any = None
        self._closed = False

    def _run(self, job_id: str) -> None:
        if self._handler is None:
            raise RuntimeError("this process does not consume check messages")
        self._handler(job_id)

    def send(self, job_id: str, delay: float = 0.0) -> None:
        """Send one check message for ``job_id``, delivered after ``delay`` seconds.

        Raises:
            dramatiq.errors.ConnectionError (and the client library's errors): the
                broker cannot be reached; the job stays ``queued`` in the database and
                the sweeper sends it again.
        """
        self.actor.send_with_options(args=(job_id,),
                                     delay=int(delay * 1000) if delay > 0 else None)

    def consume(self, handler: Callable[[str], None], threads: int) -> None:
        """Start ``threads`` worker threads calling ``handler(job_id)`` for each message;
        returns at once (:meth:`stop` ends them). A message is acknowledged after
        ``handler`` returns, also when it raises (the job records its failure)."""
        import dramatiq

        self._handler = handler
        self._worker = dramatiq.Worker(self.broker, queues={self.queue_name},
                                       worker_threads=threads, worker_timeout=500)
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop consuming (current messages finish, up to ``timeout`` s) and close the
        broker's connections."""
        if self._worker is not None:
            self._worker.stop(timeout=int(timeout * 1000))
            self._worker = None
        if self._closed:
            return
        self._closed = True
        try:
            self.broker.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not fail
            log.debug("closing the broker failed", exc_info=True)
