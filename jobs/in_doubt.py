"""The in-doubt job: ask providers what happened to transfers whose outcome is unknown, and finish them."""

from __future__ import annotations

import datetime as dt

from jobs.lease import leased
from transfer_wallet.sessions import SessionManager, SweepReport

LEASE_TTL_S = 300


def run(manager: SessionManager, *, now: dt.datetime | None = None) -> SweepReport | None:
    """One pass; None if another process holds the lease."""
    with leased(manager.db, "sweep:in-doubt", ttl_s=LEASE_TTL_S) as mine:
        if not mine:
            return None
        return manager.resolve_in_doubt(now)
