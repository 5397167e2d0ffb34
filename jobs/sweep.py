"""One sweep run under its lease, and what it did: the value the CLI renders and the scheduler logs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from jobs.lease import DEFAULT_TTL_S, Lease, leased
from transfer_wallet.db import Database
from transfer_wallet.sessions import SweepReport


@dataclass
class JobRun:
    """A job run: skipped (``lease`` names the holder and expiry) or its ``report``.

    ``lease_lost`` is set when the lease stopped being ours while the sweep ran
    (taken over, or not renewable for a whole TTL): another process may have
    swept the same rows, which the sweeps tolerate (they are idempotent), but an
    operator should know.
    """

    job: str
    lease: Lease
    report: SweepReport | None = None

    @property
    def skipped(self) -> bool:
        """True when another process held the lease, so nothing ran."""
        return not self.lease.held

    @property
    def lease_lost(self) -> str | None:
        """Why the lease was lost during the run; None if it held throughout."""
        return self.lease.lost_reason if self.lease.held else None

    def as_dict(self) -> dict[str, Any]:
        """``job``, ``skipped``, ``holder``, ``expires_at``, ``lease_lost`` and the report's fields."""
        document: dict[str, Any] = {
            "job": self.job, "skipped": self.skipped, "holder": self.lease.holder,
            "expires_at": self.lease.expires_at, "lease_lost": self.lease_lost,
        }
        if self.report is not None:
            document.update(self.report.as_dict())
        return document

    def summary(self) -> str:
        """One line: ``in-doubt: skipped, lease held by H until T`` or the report's counts."""
        if self.skipped:
            until = self.lease.expires_at.isoformat(timespec="seconds") if self.lease.expires_at else "unknown"
            return f"{self.job}: skipped, lease held by {self.lease.holder or 'another process'} until {until}"
        assert self.report is not None
        counts = ", ".join(f"{k} {v}" for k, v in self.report.as_dict().items() if k not in ("errors", "stopped_early"))
        line = f"{self.job}: {counts}, errors {len(self.report.errors)}"
        if self.report.errors:
            line += " (" + "; ".join(e.replace("\n", " ") for e in self.report.errors[:3]) + ("; ..." if len(self.report.errors) > 3 else "") + ")"
        if self.lease_lost:
            line += f"; LEASE LOST during the run: {self.lease_lost}"
        return line


def run_sweep(db: Database, job: str, sweep: Callable[[], SweepReport], *, ttl_s: float = DEFAULT_TTL_S) -> JobRun:
    """Run ``sweep()`` under the lease ``sweep:JOB`` (heartbeat-renewed); skipped if held elsewhere."""
    with leased(db, f"sweep:{job}", ttl_s=ttl_s) as lease:
        if not lease:
            return JobRun(job, lease)
        report = sweep()
        return JobRun(job, lease, report)
