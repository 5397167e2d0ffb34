"""Job runs: the one result type of every job (``JobRun``) and the job history that records them.

- ``JobRun``: what a run did, whatever the job (a sweep, a reconcile window, key-age):
  skipped (another process holds the lease), done (the window already succeeded),
  or run with an outcome (``succeeded``, ``failed``, ``file_missing``, ``lease_lost``),
  the job's report, ``summary()`` (one line) and ``as_dict()`` (JSON-ready).
- ``run_window``: the one way a job runs: take the lease, check the history
  (a ``once`` window that succeeded is not run again unless forced), record the
  start, run the body, record the end. Every run that took its lease leaves one
  ``job_runs`` row; skips and done windows leave none (nothing ran).
- ``last_succeeded``, ``recent_runs``: the history as ``tw jobs list`` reads it.

History timestamps are the wall clock of the process (like leases), never a
job's pretend ``now``. Rows older than ``KEEP_DAYS`` are pruned as runs start.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import delete, select, update

from jobs.lease import DEFAULT_TTL_S, Lease, leased
from transfer_wallet.db import Database
from transfer_wallet.models import JobRunRecord, table_of, utc_now

_runs = table_of(JobRunRecord)

#: History rows are kept this long (the sweeps alone add a few thousand a day).
KEEP_DAYS = 30


def one_line(error: BaseException) -> str:
    """``Type: first line of the message``, for a summary or the history's error column."""
    text = (str(error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass
class Outcome:
    """What a job's body returns: its report, how it ended, and its counts as one line."""

    report: Any = None
    result: str = "succeeded"
    text: str | None = None


@dataclass
class JobRun:
    """A job run: skipped (``lease`` names the holder and expiry), done already, or its ``report``.

    ``lease_lost`` is set when the lease stopped being ours while the job ran
    (taken over, or not renewable for a whole TTL): another process may have
    done the same work, which the jobs tolerate (they are idempotent), but an
    operator should know. ``window`` is empty for the sweeps.
    """

    job: str
    lease: Lease
    report: Any = None
    window: str = ""
    result: str | None = None
    text: str | None = None
    error: str | None = None
    history_id: int | None = None

    @property
    def skipped(self) -> bool:
        """True when another process held the lease, so nothing ran."""
        return self.result is None and not self.lease.held

    @property
    def lease_lost(self) -> str | None:
        """Why the lease was lost during the run; None if it held throughout."""
        return self.lease.lost_reason if self.lease.held else None

    @property
    def outcome(self) -> str:
        """``skipped``, ``done``, ``succeeded``, ``failed``, ``file_missing`` or ``lease_lost``."""
        if self.skipped:
            return "skipped"
        if self.error is not None:
            return "failed"
        if self.lease_lost and self.result != "done":
            return "lease_lost"
        return self.result or "succeeded"

    @property
    def label(self) -> str:
        """``job`` or ``job window``: how a log line names the run."""
        return f"{self.job} {self.window}" if self.window else self.job

    def as_dict(self) -> dict[str, Any]:
        """``job``, ``window``, ``outcome``, ``skipped``, ``holder``, ``expires_at``, ``lease_lost``,
        ``error``, ``summary`` and the report's own fields."""
        document: dict[str, Any] = {
            "job": self.job, "window": self.window, "outcome": self.outcome, "skipped": self.skipped,
            "holder": self.lease.holder, "expires_at": self.lease.expires_at, "lease_lost": self.lease_lost,
            "error": self.error, "summary": self.summary(),
        }
        if self.report is not None:
            document.update(self.report.as_dict())
        return document

    def summary(self) -> str:
        """One line: ``in-doubt: skipped, lease held by H until T``, the report's counts, or why it failed."""
        if self.skipped:
            until = self.lease.expires_at.isoformat(timespec="seconds") if self.lease.expires_at else "unknown"
            return f"{self.label}: skipped, lease held by {self.lease.holder or 'another process'} until {until}"
        if self.result == "done":
            return f"{self.label}: already done ({self.text}); --force runs it again"
        if self.error is not None:
            line = f"{self.label}: FAILED: {self.error}"
        else:
            line = f"{self.label}: {self.text if self.text is not None else _counts(self.report)}"
        if self.lease_lost:
            line += f"; LEASE LOST during the run: {self.lease_lost}"
        return line


def _counts(report: Any) -> str:
    """A sweep-like report (``as_dict`` counts and ``errors``) as ``k v, ..., errors N (e1; e2; e3; ...)``."""
    if report is None:
        return "nothing to report"
    counts = ", ".join(f"{k} {v}" for k, v in report.as_dict().items() if k not in ("errors", "stopped_early"))
    errors = list(getattr(report, "errors", []))
    line = f"{counts}, errors {len(errors)}"
    if errors:
        line += " (" + "; ".join(e.replace("\n", " ") for e in errors[:3]) + ("; ..." if len(errors) > 3 else "") + ")"
    return line


def start(db: Database, job: str, window: str, holder: str, *, provider: str | None = None,
          business_date: dt.date | None = None) -> int:
    """Record that a run starts (``running``); prunes the job's rows older than ``KEEP_DAYS``. Returns its id.

    The caller holds the window's lease, so an earlier row of the window still
    ``running`` is a run whose process is gone: it is finished as ``failed``
    with the error ``crashed: ...`` (its real end is unknown; ``finished_at``
    is when this was noticed). Should that process still be alive after all
    (its lease was taken over), its own end overwrites this.
    """
    now = utc_now()

    def write(connection: Any) -> int:
        connection.execute(delete(_runs).where(_runs.c.job == job,
                                               _runs.c.started_at < now - dt.timedelta(days=KEEP_DAYS)))
        _close_crashed(connection, job, window, holder, now)
        return int(connection.execute(_runs.insert().values(
            job=job, window_key=window, provider=provider, business_date=business_date, holder=holder[:120],
            started_at=now, outcome="running",
        ).returning(_runs.c.id)).scalar_one())

    return db.transaction(write)


def _running(db: Database, job: str, window: str) -> bool:
    """True if a history row of (job, window) is still ``running`` (live elsewhere, or crashed)."""
    return db.transaction(lambda c: c.execute(select(_runs.c.id).where(
        _runs.c.job == job, _runs.c.window_key == window, _runs.c.outcome == "running").limit(1)).first(),
        readonly=True) is not None


def _close_crashed(connection: Any, job: str, window: str, holder: str, now: dt.datetime) -> None:
    """Finish the (job, window) rows still ``running`` as crashed; the caller holds the window's lease."""
    label = f"{job} {window}" if window else job
    error = f"crashed: no end was recorded; {holder[:60]} took the lease at {now.isoformat(timespec='seconds')}"
    connection.execute(update(_runs).where(_runs.c.job == job, _runs.c.window_key == window,
                                           _runs.c.outcome == "running").values(
        outcome="failed", finished_at=now, error=error, summary=f"{label}: CRASHED: {error}"[:500]))


def finish(db: Database, run: JobRun) -> None:
    """Record how ``run`` ended (its outcome, one-line summary, error)."""
    assert run.history_id is not None
    values = {"finished_at": utc_now(), "outcome": run.outcome, "summary": run.summary()[:500],
              "error": run.error[:1000] if run.error else None}
    db.transaction(lambda c: c.execute(update(_runs).where(_runs.c.id == run.history_id).values(**values)))


def last_succeeded(db: Database, job: str, window: str) -> Any:
    """The latest succeeded history row of (job, window), or None."""
    return db.transaction(lambda c: c.execute(
        select(_runs).where(_runs.c.job == job, _runs.c.window_key == window, _runs.c.outcome == "succeeded")
        .order_by(_runs.c.id.desc()).limit(1)).first(), readonly=True)


def recent_runs(db: Database, *, job: str | None = None, provider: str | None = None, limit: int = 5) -> list[Any]:
    """The latest ``limit`` history rows (newest first), of one job (and provider) or of all."""
    query = select(_runs).order_by(_runs.c.id.desc()).limit(limit)
    if job is not None:
        query = query.where(_runs.c.job == job)
    if provider is not None:
        query = query.where(_runs.c.provider == provider)
    return list(db.transaction(lambda c: c.execute(query).all(), readonly=True))


def _done_text(db: Database, job: str, window: str, done_elsewhere: Callable[[], str | None] | None) -> str | None:
    """Why a ``once`` window is done already (its succeeded run, or ``done_elsewhere()``), or None."""
    row = last_succeeded(db, job, window)
    if row is not None:
        when = row.finished_at.isoformat(timespec="seconds") if row.finished_at else "?"
        return f"succeeded at {when} by {row.holder}"
    return done_elsewhere() if done_elsewhere is not None else None


def run_window(db: Database, job: str, body: Callable[[Lease], Outcome], *, lease_name: str, window: str = "",
               once: bool = False, force: bool = False, provider: str | None = None,
               business_date: dt.date | None = None, ttl_s: float = DEFAULT_TTL_S,
               done_elsewhere: Callable[[], str | None] | None = None) -> JobRun:
    """Run ``body(lease)`` under the lease ``lease_name`` and record it in the history.

    The body gets the lease so that a long one can stop once ``lease.lost``.

    ``once``: a window that already succeeded is ``done`` (not run) unless ``force``;
    the check is repeated under the lease, so two processes never both run it.
    ``done_elsewhere``: also done when this returns why (e.g. work done outside the jobs).
    A body that raises is recorded ``failed`` with the error's first line and
    returned as such (never raised): a job reports, the caller decides.
    """
    if (once and not force and (text := _done_text(db, job, window, done_elsewhere)) is not None
            and not _running(db, job, window)):
        return JobRun(job, Lease(lease_name, False, None, None), window=window, result="done", text=text)
    with leased(db, lease_name, ttl_s=ttl_s) as lease:
        if not lease:
            return JobRun(job, lease, window=window)
        if once and not force and (text := _done_text(db, job, window, done_elsewhere)) is not None:
            holder, now = lease.holder or "?", utc_now()
            db.transaction(lambda c: _close_crashed(c, job, window, holder, now))  # done, and the lease is ours
            return JobRun(job, lease, window=window, result="done", text=text)
        history_id = start(db, job, window, lease.holder or "?", provider=provider, business_date=business_date)
        try:
            outcome = body(lease)
            run = JobRun(job, lease, outcome.report, window, outcome.result, outcome.text, history_id=history_id)
        except Exception as error:
            run = JobRun(job, lease, window=window, error=one_line(error), history_id=history_id)
        lease.end()  # a lease lost during the body counts, not one lost while we record
        finish(db, run)
        return run
