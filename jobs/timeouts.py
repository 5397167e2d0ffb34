"""The timeout job: close sessions past their idle or maximum-length deadline, retry closings."""

from __future__ import annotations

import datetime as dt

from jobs.lease import DEFAULT_TTL_S
from jobs.sweep import JobRun, run_sweep
from transfer_wallet.sessions import SessionManager


def run(manager: SessionManager, *, now: dt.datetime | None = None, ttl_s: float = DEFAULT_TTL_S) -> JobRun:
    """One sweep (at most the library's batch of sessions) under the ``sweep:timeouts`` lease.

    ``JobRun.skipped`` when another live process holds the lease.
    """
    return run_sweep(manager.db, "timeouts", lambda keep_going: manager.expire_sessions(now, keep_going=keep_going), ttl_s=ttl_s)
