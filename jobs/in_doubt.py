"""The in-doubt job: ask providers what happened to transfers whose outcome is unknown, and finish them."""

from __future__ import annotations

import datetime as dt

from jobs.lease import DEFAULT_TTL_S
from jobs.sweep import JobRun, run_sweep
from transfer_wallet.sessions import SessionManager


def run(manager: SessionManager, *, now: dt.datetime | None = None, ttl_s: float = DEFAULT_TTL_S) -> JobRun:
    """One pass (at most the library's batch of transfers) under the ``sweep:in-doubt`` lease.

    ``JobRun.skipped`` when another live process holds the lease.
    """
    return run_sweep(manager.db, "in-doubt", lambda keep_going: manager.resolve_in_doubt(now, keep_going=keep_going), ttl_s=ttl_s)
