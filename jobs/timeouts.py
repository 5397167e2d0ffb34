"""The timeout job: close sessions past their idle or maximum-length deadline, retry closings."""

from __future__ import annotations

import datetime as dt

from jobs.lease import leased
from transfer_wallet.sessions import SessionManager, SweepReport

LEASE_TTL_S = 300


def run(manager: SessionManager, *, now: dt.datetime | None = None) -> SweepReport | None:
    """One sweep; None if another process holds the lease."""
    with leased(manager.db, "sweep:timeouts", ttl_s=LEASE_TTL_S) as mine:
        if not mine:
            return None
        return manager.expire_sessions(now)
