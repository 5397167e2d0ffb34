"""One sweep run under its lease (``sweep:JOB``), recorded in the job history.

``JobRun`` lives in ``jobs.history`` (every job shares it) and is re-exported
here for the sweeps' callers.
"""

from __future__ import annotations

from typing import Callable

from jobs.history import JobRun, Outcome, run_window
from jobs.lease import DEFAULT_TTL_S
from transfer_wallet.db import Database
from transfer_wallet.sessions import SweepReport

__all__ = ["JobRun", "run_sweep"]


def run_sweep(db: Database, job: str, sweep: Callable[[Callable[[], bool]], SweepReport], *,
              ttl_s: float = DEFAULT_TTL_S) -> JobRun:
    """Run ``sweep(keep_going)`` under the lease ``sweep:JOB`` (heartbeat-renewed); skipped if held elsewhere.

    ``keep_going()`` turns False once the lease is lost: the sweep stops before its next item.
    """
    return run_window(db, job, lambda lease: Outcome(sweep(lambda: not lease.lost)), lease_name=f"sweep:{job}",
                      ttl_s=ttl_s)
