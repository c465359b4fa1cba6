"""Scheduled source runs: APScheduler with its job store in the monitor database.

Each enabled ``[[sources]]`` entry with a ``cron`` (5 fields, UTC) or
``interval`` (seconds) becomes one job ``source:<name>`` in the
``apscheduler_jobs`` table of the same database, so schedules and their next
run times survive restarts. Missed runs are coalesced into one and still run
when at most :data:`MISFIRE_GRACE` seconds late (e.g. after downtime). A job
only *queues* work (:func:`enqueue_source`, one recorded scan per run); the queue
workers check it, fetching each image conditionally like ``monitor scan SOURCE``.

APScheduler pickles job arguments, so jobs get plain values (the config path
and the source name) and reopen the workspace themselves.
"""

from __future__ import annotations

import logging
from datetime import UTC
from pathlib import Path

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.config.daemon import SourceSettings
from monitor.daemon.messages import notify
from monitor.intake.crawl.base import CrawlLog
from monitor.services.scans import close_if_idle
from monitor.services.sources import discover
from monitor.services.submissions import MAX_URL
from monitor.services.workspace import Workspace
from monitor.store import queue
from monitor.store import scans as scans_repo

log = logging.getLogger("monitor.schedule")

JOB_PREFIX = "source:"
MISFIRE_GRACE = 12 * 3600
"""Seconds a missed run may be late and still run (once, coalesced)."""


DIGEST_JOB = "alerts:digest"
"""Job id of the scheduled e-mail digest."""


def enqueue_source(config_path: str, source_name: str) -> int:
    """Scheduler job: queue what source ``source_name`` finds now; returns jobs created."""
    from monitor.config import load_settings

    ws = Workspace(load_settings(Path(config_path)))
    try:
        return queue_source(ws, source_name)
    finally:
        if "fetcher" in ws.__dict__:  # opened (a web source): close its connections
            ws.fetcher.close()
        ws.db.dispose()


def send_digest_job(config_path: str) -> None:
    """Scheduler job: e-mail the digest of the period now ending (skipped when empty)."""
    from monitor.config import load_settings
    from monitor.outcome.notify import send_digest

    ws = Workspace(load_settings(Path(config_path)))
    try:
        send_digest(ws)
    finally:
        ws.db.dispose()


def queue_source(ws: Workspace, source_name: str) -> int:
    """Run discovery of source ``source_name`` as one scan and queue one job per image
    found (``file`` jobs for a folder source, ``crawl`` jobs otherwise; one already
    queued for the same place is reused; how each image appears on its page travels in
    the job's ``metadata``, see :func:`monitor.daemon.worker.job_context`). Jobs are
    queued in one transaction once discovery is over, so the workers cannot close the
    scan half-way; they close it
    (:func:`monitor.services.scans.close_if_idle`) when its last job is done. A scan
    that found nothing new is closed here.

    Returns:
        The number of jobs created (0 for an unknown or disabled source).

    Raises:
        Exception: whatever stops discovery, after marking the scan ``failed``.
    """
    source = ws.settings.source(source_name)
    if source is None or not source.enabled:
        log.warning("source %r is not configured or disabled; nothing queued", source_name)
        return 0
    with ws.session() as s:
        scan = scans_repo.open_scan(s, source.name, source.kind)
    found = CrawlLog()
    try:
        items = list(discover(ws, source, found))
    except Exception as exc:
        with ws.session() as s:
            scans_repo.close_scan(s, scan.id, "failed", note=f"{type(exc).__name__}: {exc}")
        raise
    with ws.session() as s:
        scans_repo.record_discovery(s, scan.id, found.summary(), len(found.errors))
    kind = "file" if source.kind == "folder" else "crawl"
    where = "path" if kind == "file" else "url"
    fits = [d for d in items if max(len(d.location), len(d.page_url or "")) <= MAX_URL]
    if len(fits) < len(items):
        log.warning("source %s: %d location(s) longer than %d characters skipped",
                    source.name, len(items) - len(fits), MAX_URL)
    requests = [{"kind": kind, "source": source.name, "page_url": d.page_url,
                 "scan_id": scan.id, "dedupe_location": True, where: d.location,
                 "metadata": d.context.as_dict() if d.context else None}
                for d in fits]
    made = [r.job.id for r in queue.enqueue_many(ws.db, requests) if r.created] \
        if requests else []
    notify(made)  # the workers of this process, or a broker message per job
    created = len(made)
    close_if_idle(ws, scan.id, stages=False)
    log.info("source %s: %d job(s) queued (scan %s)", source.name, created, scan.id)
    return created


def trigger_for(source: SourceSettings):
    """The source's trigger (cron wins over interval), or None when it has no schedule."""
    if source.cron:
        return CronTrigger.from_crontab(source.cron, timezone=UTC)
    if source.interval > 0:
        return IntervalTrigger(seconds=source.interval, timezone=UTC)
    return None


def build_scheduler(db: Engine) -> BackgroundScheduler:
    """A scheduler whose default job store is the ``apscheduler_jobs`` table of ``db``."""
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=db)},
        job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE,
                      "max_instances": 1},
        timezone=UTC)


def sync_sources(scheduler: BackgroundScheduler, settings: Settings, config_path: str
                 ) -> list[str]:
    """Make the stored jobs match the configured sources; returns the scheduled job ids.

    An unchanged job (same trigger and arguments) is kept as stored, with its
    persisted next run time, so a restart neither skips nor repeats a run.
    """
    wanted = {}
    for src in settings.sources:
        trig = trigger_for(src) if src.enabled else None
        if trig is not None:
            wanted[JOB_PREFIX + src.name] = (trig, src)
    digest = settings.alerts.digest_cron if settings.smtp.host else ""
    if digest:
        trig = CronTrigger.from_crontab(digest, timezone=UTC)
        old = scheduler.get_job(DIGEST_JOB)
        if old is None or str(old.trigger) != str(trig):
            scheduler.add_job(send_digest_job, trig, args=[config_path], id=DIGEST_JOB,
                              name="e-mail digest", replace_existing=True)
    elif scheduler.get_job(DIGEST_JOB) is not None:
        scheduler.remove_job(DIGEST_JOB)
    for job in scheduler.get_jobs():
        if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
            scheduler.remove_job(job.id)
    for job_id, (trig, src) in wanted.items():
        args = [config_path, src.name]
        old = scheduler.get_job(job_id)
        if old is not None and str(old.trigger) == str(trig) and list(old.args) == args:
            continue
        scheduler.add_job(enqueue_source, trig, args=args, id=job_id,
                          name=f"{src.kind} source {src.name}", replace_existing=True)
    return sorted(wanted)
