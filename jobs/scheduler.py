"""APScheduler wiring: the sweeps on intervals, each with an explicit id, one instance, coalesced.

``tw jobs schedule`` runs this in the foreground until interrupted. Several
scheduler processes (on several hosts) may run at once: the database leases in
the jobs make each sweep run in one of them at a time.
"""

from __future__ import annotations

import logging
from typing import Callable

from apscheduler.schedulers.blocking import BlockingScheduler

from jobs import in_doubt, timeouts
from transfer_wallet.sessions import SessionManager

log = logging.getLogger("transfer_wallet.jobs")

#: job id -> (function, interval in seconds)
JOBS: dict[str, tuple[Callable[..., object], int]] = {
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


def _logged(job_id: str, function: Callable[..., object], manager: SessionManager) -> Callable[[], None]:
    def run() -> None:
        report = function(manager)
        if report is None:
            log.info("%s: lease held elsewhere, skipped", job_id)
        else:
            log.info("%s: %s", job_id, getattr(report, "as_dict", lambda: report)())

    return run
