"""Settings section ``[queue]``: the broker between roles, leases, the sweeper and gallery sync.

Empty ``broker_url`` keeps the embedded queue: ``monitor serve`` checks jobs in its own
worker threads straight from the database. A broker URL (``redis://…`` or ``amqp://…``)
puts a real task queue (Dramatiq) between the ``api``, ``worker`` and ``scheduler``
roles; the database stays the source of truth for every job.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class QueueSettings(BaseModel):
    """How jobs travel between processes, and how fast failures are found again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker_url: str = Field(
        "", description="Task-queue broker: redis://HOST:6379/0 or amqp://USER:PASS@HOST:5672//; "
        "empty: the embedded in-process queue (one `monitor serve`). Set "
        "MONITOR_QUEUE__BROKER_URL.")
    name: str = Field("monitor.checks", pattern=r"^[A-Za-z0-9._-]{1,64}$",
                      description="Broker queue the check messages go to.")
    lease_seconds: float = Field(
        300.0, gt=0, description="Seconds a worker holds a job; a worker killed mid-check "
        "gives its jobs back after this.")
    max_attempts: int = Field(3, ge=1, description="Leases a job gets before it is marked "
                              "error (the dead-letter state).")
    backoff: float = Field(5.0, ge=0, description="First retry delay after a failed check "
                           "(seconds), doubled per attempt.")
    sweep_every: float = Field(15.0, gt=0, description="Seconds between sweeps of the "
                               "scheduler: expired leases back to the queue, lost messages "
                               "sent again.")
    sweep_after: float = Field(
        300.0, gt=0, description="A job queued this long (seconds) without being taken is "
        "sent to the broker again (its message was lost, e.g. a broker restart).")
    gallery_sync: float = Field(
        1.0, gt=0, description="Seconds between looks at the gallery version: a gallery "
        "change made by another process reaches this one's indices within this.")
    scheduler_ttl: float = Field(
        30.0, ge=3, description="Seconds the active scheduler's lock lasts unless renewed "
        "(renewed every third of it); a standby scheduler takes over after it runs out.")
    metrics_port: int = Field(
        0, ge=0, le=65535, description="Port where `monitor worker` and `monitor scheduler` "
        "serve Prometheus metrics at /metrics (on server.host): checks by verdict, check "
        "time, jobs by state; 0: not served. The api and `monitor serve` have /metrics on "
        "their own port.")

    @field_validator("broker_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
            raise ValueError("queue.broker_url must start with redis://, rediss://, amqp:// "
                             "or amqps:// (empty: the embedded queue)")
        return value
