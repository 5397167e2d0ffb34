"""APScheduler wiring: the sweeps on intervals, each with an explicit id, one instance, coalesced.

``tw jobs schedule`` runs this in the foreground until interrupted. Several
scheduler processes (on several hosts) may run at once: the database leases in
the jobs make each sweep run in one of them at a time. Each run logs one line:
``in-doubt: skipped, lease held by H until T`` or the sweep's counts (WARNING
when the sweep had errors, ERROR when its lease was lost during the run).
"""

from __future__ import annotations

import logging
from typing import Callable

from apscheduler.schedulers.blocking import BlockingScheduler

from jobs import in_doubt, timeouts
from jobs.sweep import JobRun
from transfer_wallet.sessions import SessionManager

log = logging.getLogger("transfer_wallet.jobs")

#: job id -> (function, interval in seconds)
JOBS: dict[str, tuple[Callable[..., JobRun], int]] = {
    "timeouts": (timeouts.run, 30),
    "in-doubt": (in_doubt.run, 60),
}


def build(manager: SessionManager, *, scheduler: BlockingScheduler | None = None) -> BlockingScheduler:
    """A scheduler with every job registered (not started)."""
    scheduler = scheduler or BlockingScheduler(timezone="UTC")
    for job_id, (function, interval_s) in JOBS.items():
        scheduler.add_job(
            _logged(job_id, function, manager), "interval", seconds=interval_s, id=job_id,
            max_instances=1, coalesce=True, misfire_grace_time=interval_s, replace_existing=True,
        )
    return scheduler


def _logged(job_id: str, function: Callable[..., JobRun], manager: SessionManager) -> Callable[[], None]:
    """The job as the scheduler calls it: run once, log one line (the traceback of a failure at DEBUG)."""

    def run() -> None:
        try:
            outcome = function(manager)
        except Exception as error:
            log.error("%s: failed: %s: %s", job_id, type(error).__name__, (str(error).splitlines() or [""])[0])
            log.debug("%s: traceback", job_id, exc_info=True)
            return
        failed = outcome.report is not None and outcome.report.errors
        level = logging.ERROR if outcome.lease_lost else logging.WARNING if failed else logging.INFO
        log.log(level, "%s", outcome.summary())

    return run
