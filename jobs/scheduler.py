"""APScheduler wiring: every job with an explicit id, one instance, coalesced, a misfire grace.

Jobs (``job_specs``), their times from configuration (``jobs.settings`` and
each provider's ``[providers.NAME.reconcile]``):

- ``timeouts``, ``in-doubt``: the sweeps, on intervals (lease ``sweep:JOB``).
- ``key-age``: daily at ``key_age_at`` UTC (lease ``key-age:DATE``).
- ``reconcile:NAME``: nightly at the provider's ``at`` in its timezone (a cron
  trigger there) for the provider's previous day; ``reconcile-retry:NAME`` looks
  every ``retry_every_s`` (and once at start-up, to catch up) between ``at`` and
  ``retry_until``, and runs the window if it has not succeeded (missing report,
  crashed run), then catches up recent days that never ran (``reconcile.tick``:
  the scheduler was down through a whole retry window). Lease
  ``reconcile:NAME:DATE``; a succeeded window (or one reconciled by hand) is not run again.

Several scheduler processes (on several hosts, one PostgreSQL database) may run
at once: the leases and the job history make each window run in one of them,
once. ``serve`` runs until SIGTERM or SIGINT, lets the running jobs finish, and
returns. Each run logs one line (INFO; WARNING for a missing report or sweep
errors; ERROR for a failure or a lost lease); a window already done logs at DEBUG.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from jobs import in_doubt, key_age, reconcile, timeouts
from jobs.history import JobRun, recent_runs
from jobs.settings import JobSettings
from transfer_wallet.config import ProviderConfig
from transfer_wallet.models import utc_now
from transfer_wallet.sessions import SessionManager

log = logging.getLogger("transfer_wallet.jobs")


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: its id, the history job it records as, its trigger and what it calls."""

    id: str
    job: str
    trigger: BaseTrigger
    call: Callable[[], JobRun | list[JobRun] | None]
    schedule: str
    misfire_grace_s: int
    provider: str | None = None
    interval_s: int | None = None
    run_at_start: bool = False
    listed: bool = True


def job_specs(manager: SessionManager, providers: Mapping[str, ProviderConfig],
              settings: JobSettings) -> list[JobSpec]:
    """Every job the scheduler runs, in a stable order."""
    ttl_s, grace = settings.lease_ttl_s, settings.misfire_grace_s
    specs = [
        JobSpec("timeouts", "timeouts", IntervalTrigger(seconds=settings.timeouts_every_s, timezone="UTC"),
                lambda: timeouts.run(manager, ttl_s=ttl_s), f"every {settings.timeouts_every_s} s",
                settings.timeouts_every_s, interval_s=settings.timeouts_every_s),
        JobSpec("in-doubt", "in-doubt", IntervalTrigger(seconds=settings.in_doubt_every_s, timezone="UTC"),
                lambda: in_doubt.run(manager, ttl_s=ttl_s), f"every {settings.in_doubt_every_s} s",
                settings.in_doubt_every_s, interval_s=settings.in_doubt_every_s),
        JobSpec("key-age", "key-age", CronTrigger(hour=settings.key_age_at.hour, minute=settings.key_age_at.minute,
                                                  timezone="UTC"),
                lambda: key_age.run(manager.db, providers.values(), ttl_s=ttl_s),
                f"daily {settings.key_age_at:%H:%M} UTC", grace),
    ]
    for name, config in sorted(providers.items()):
        schedule = config.reconcile
        if schedule is None:
            continue
        specs.append(JobSpec(
            f"reconcile:{name}", "reconcile",
            CronTrigger(hour=schedule.at.hour, minute=schedule.at.minute, timezone=schedule.timezone),
            lambda c=config: reconcile.run(manager.db, c, ttl_s=ttl_s),  # type: ignore[misc]
            f"daily {schedule.at:%H:%M} {schedule.timezone} ({schedule.source}); a missing report is looked for "
            f"every {schedule.retry_every_s} s until {schedule.retry_until:%H:%M}", grace, provider=name))
        specs.append(JobSpec(
            f"reconcile-retry:{name}", "reconcile", IntervalTrigger(seconds=schedule.retry_every_s, timezone="UTC"),
            lambda c=config: reconcile.tick(manager.db, c, ttl_s=ttl_s),  # type: ignore[misc]
            f"every {schedule.retry_every_s} s", max(schedule.retry_every_s, 60), provider=name,
            interval_s=schedule.retry_every_s, run_at_start=True, listed=False))
    return specs


def build(manager: SessionManager, providers: Mapping[str, ProviderConfig] | None = None,
          settings: JobSettings | None = None, *, scheduler: BaseScheduler | None = None) -> BaseScheduler:
    """A scheduler with every job registered (not started); a ``BlockingScheduler`` unless one is given."""
    scheduler = scheduler or BlockingScheduler(timezone="UTC")
    for spec in job_specs(manager, providers or {}, settings or JobSettings()):
        extra: dict[str, Any] = {"next_run_time": utc_now()} if spec.run_at_start else {}
        scheduler.add_job(_logged(spec.id, spec.call), spec.trigger, id=spec.id, name=spec.id, max_instances=1,
                          coalesce=True, misfire_grace_time=spec.misfire_grace_s, replace_existing=True, **extra)
    return scheduler


def _level(outcome: JobRun) -> int:
    if outcome.outcome in ("failed", "lease_lost"):
        return logging.ERROR
    if outcome.outcome == "file_missing" or getattr(outcome.report, "errors", None):
        return logging.WARNING
    return logging.DEBUG if outcome.outcome == "done" else logging.INFO


def _logged(job_id: str, function: Callable[[], JobRun | list[JobRun] | None]) -> Callable[[], None]:
    """The job as the scheduler calls it: run once, log one line (the traceback of a failure at DEBUG)."""

    def run() -> None:
        try:
            outcome = function()
        except Exception as error:
            log.error("%s: failed: %s: %s", job_id, type(error).__name__, (str(error).splitlines() or [""])[0])
            log.debug("%s: traceback", job_id, exc_info=True)
            return
        for each in outcome if isinstance(outcome, list) else [outcome] if outcome is not None else []:
            log.log(_level(each), "%s", each.summary())

    return run


def serve(manager: SessionManager, providers: Mapping[str, ProviderConfig], settings: JobSettings, *,
          ready: Callable[[], None] | None = None) -> int:
    """Run every job until SIGTERM or SIGINT; then wait for the running jobs to finish and return 0.

    Call from the main thread (signal handlers). ``ready`` is called once the scheduler runs.
    """
    scheduler = BackgroundScheduler(timezone="UTC")
    build(manager, providers, settings, scheduler=scheduler)
    stop = threading.Event()
    received: list[str] = []

    def on_signal(number: int, _frame: Any) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.start()
        log.info("scheduler: running %d jobs", len(scheduler.get_jobs()))
        if ready is not None:
            ready()
        while not stop.wait(1.0):
            pass
        log.info("scheduler: %s received, waiting for the running jobs to finish", received[0])
        scheduler.shutdown(wait=True)
        log.info("scheduler: stopped")
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


def next_run(spec: JobSpec, last_started: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """When ``spec`` runs next under a running scheduler: its cron time, or its interval after the last run."""
    if spec.interval_s is not None:
        if last_started is None:
            return now
        return max(now, last_started + dt.timedelta(seconds=spec.interval_s))
    fire = spec.trigger.get_next_fire_time(None, now)
    return fire.astimezone(dt.timezone.utc) if fire is not None else None


def overview(manager: SessionManager, providers: Mapping[str, ProviderConfig], settings: JobSettings, *,
             runs: int = 5, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Each listed job: id, schedule, next run, and its last ``runs`` history rows (newest first)."""
    now = now or utc_now()
    entries = []
    for spec in job_specs(manager, providers, settings):
        if not spec.listed:
            continue
        rows = recent_runs(manager.db, job=spec.job, provider=spec.provider, limit=runs)
        entries.append({
            "id": spec.id, "schedule": spec.schedule,
            "next_run": next_run(spec, rows[0].started_at if rows else None, now),
            "runs": [{"window": r.window_key, "outcome": r.outcome, "holder": r.holder, "started_at": r.started_at,
                      "finished_at": r.finished_at, "summary": r.summary, "error": r.error} for r in rows],
        })
    return entries
