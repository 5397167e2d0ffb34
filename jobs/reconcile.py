"""The nightly reconcile job: one provider's report for one business date, under a lease per window.

Contract (the scheduler, ``tw jobs run reconcile`` and ``tw demo`` all call it)::

    run(db, provider, business_date=None, *, now=None, report=None, out_dir=None,
        force=False, providers_file=None, ttl_s=DEFAULT_TTL_S) -> JobRun

- ``db``: the ``Database`` (the scheduler passes ``SessionManager.db``; the
  job needs no provider client: the report endpoint is fetched on its own).
- ``provider``: a provider name (looked up in ``providers_file``, else
  ``TW_PROVIDERS_FILE``, else ``./providers.toml``) or a ``ProviderConfig``.
- ``business_date``: default the provider's previous day in its report timezone at ``now``.
- ``now``: the instant the run pretends it is (discrepancy timestamps, default business date).
- ``report``: the report's bytes or a file, instead of the configured source
  (``[providers.NAME.reconcile]``: the signed endpoint, or the drop folder).
- ``out_dir``: also write the finance files (CSV, XLSX, HTML) there.

The window is ``PROVIDER:DATE`` and its lease ``reconcile:PROVIDER:DATE``. A
window whose history has a succeeded run is ``done`` (not run again) unless
``force``. A report that is not there records ``FILE_MISSING`` (stable
fingerprint per provider and date) and ends ``file_missing``: the scheduler
looks again every ``retry_every_s`` until ``retry_until``; the run that finds
the file closes it as cleared (the reconciliation clears what it no longer
sees for its window). A succeeded ``reconciliation_runs`` row of the window
(``tw reconcile`` by hand) also makes it ``done``. ``JobRun.summary()`` is one
line, ``as_dict()`` JSON-ready.

The retry tick (``tick``; ``run_if_due`` returns its current window only) also
catches up, a few per tick, the last ``CATCH_UP_DAYS`` days that never ran to an
end (no history row but a crashed one, no succeeded reconciliation): reconciled
if their report is there, else ``FILE_MISSING``, so no day is skipped unseen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select

from jobs.history import JobRun, Outcome, run_window
from jobs.lease import DEFAULT_TTL_S, Lease
from transfer_wallet import discrepancies
from transfer_wallet.config import ProviderConfig, provider_config
from transfer_wallet.db import Database
from transfer_wallet.errors import AuthenticationFailedError, ProviderError
from transfer_wallet.models import JobRunRecord, ReconciliationRun, Transfer, table_of, utc_now
from transfer_wallet.reconcile.classify import SOURCE, fingerprint
from transfer_wallet.reconcile.run import RunResult, fetch_report, reconcile
from transfer_wallet.reconcile_schedule import ReconcileSchedule, previous_business_date

JOB = "reconcile"
#: The retry tick catches up this many business days before the current window ...
CATCH_UP_DAYS = 7
#: ... running at most this many of them per tick, newest first (bounded work; the next tick takes the rest).
CATCH_UP_PER_TICK = 2

_job_runs = table_of(JobRunRecord)
_recon_runs = table_of(ReconciliationRun)
_transfers = table_of(Transfer)


@dataclass
class ReconcileReport:
    """A completed window: the reconciliation's result and the finance files written."""

    result: RunResult
    files: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The run's document plus ``files``."""
        return {**self.result.as_dict(), "files": [str(p) for p in self.files]}


@dataclass
class MissingReport:
    """A window whose report is not there yet: where it was looked for, and the discrepancy id."""

    provider: str
    business_date: dt.date
    looked_at: str
    discrepancy_id: int

    def as_dict(self) -> dict[str, Any]:
        """``provider``, ``business_date``, ``looked_at``, ``discrepancy_id``."""
        return {"provider": self.provider, "business_date": self.business_date.isoformat(),
                "looked_at": self.looked_at, "discrepancy_id": self.discrepancy_id}


def window_of(provider: str, business_date: dt.date) -> str:
    """``PROVIDER:DATE``: the window key of a reconcile run."""
    return f"{provider}:{business_date.isoformat()}"


def file_missing_fingerprint(provider: str, business_date: dt.date) -> str:
    """The stable identity of a window's ``FILE_MISSING``: every retry bumps the same discrepancy."""
    return fingerprint(provider, business_date, "FILE_MISSING", "report")


def schedule_of(config: ProviderConfig) -> ReconcileSchedule:
    """The provider's ``[providers.NAME.reconcile]``, or the defaults (endpoint, 06:00 report time)."""
    return config.reconcile or ReconcileSchedule(timezone=config.report.timezone)


def _locate(config: ProviderConfig, day: dt.date, report: bytes | Path | None) -> tuple[bytes | Path | None, str, str]:
    """``(source or None if not there, file name, where it was looked for)``; no transaction is open here."""
    if isinstance(report, bytes):
        return report, f"{config.name}-{day.isoformat()}.csv", "given bytes"
    if isinstance(report, Path):
        return (report if report.exists() else None), report.name, str(report)
    schedule = schedule_of(config)
    if schedule.source == "drop":
        path = schedule.drop_path(day)
        return (path if path.exists() else None), path.name, str(path)
    where = f"{config.base_url}/v1/reports/transfers?date={day.isoformat()}"
    try:
        body, name = fetch_report(config, day)
    except AuthenticationFailedError:
        raise  # a configuration problem, not a late file: the run fails
    except ProviderError as error:
        return None, "", f"{where} ({(str(error).splitlines() or [''])[0]})"
    return body, name, where


def _record_missing(db: Database, config: ProviderConfig, day: dt.date, where: str, now: dt.datetime) -> int:
    finding = discrepancies.Finding(
        kind="FILE_MISSING", source=SOURCE, provider=config.name, business_date=day,
        fingerprint=file_missing_fingerprint(config.name, day),
        detail=f"the {config.name} report for {day.isoformat()} is not there ({where}); looked again until it arrives",
    )
    return db.transaction(lambda c: discrepancies.record(c, finding, now=now))


def run(db: Database, provider: str | ProviderConfig, business_date: dt.date | None = None, *,
        now: dt.datetime | None = None, report: bytes | Path | None = None, out_dir: Path | None = None,
        force: bool = False, providers_file: str | Path | None = None, ttl_s: float = DEFAULT_TTL_S) -> JobRun:
    """Reconcile one window (provider, business date) under its lease; see the module docstring."""
    config = provider if isinstance(provider, ProviderConfig) else provider_config(provider, providers_file)
    now = now or utc_now()
    day = business_date or previous_business_date(now, config.report.timezone)

    def body(_lease: Lease) -> Outcome:
        source, name, where = _locate(config, day, report)
        if source is None:
            discrepancy_id = _record_missing(db, config, day, where, now)
            retry = schedule_of(config)
            return Outcome(MissingReport(config.name, day, where, discrepancy_id), "file_missing",
                           f"report not there ({where}): FILE_MISSING #{discrepancy_id}; looked for again every "
                           f"{retry.retry_every_s} s until {retry.retry_until:%H:%M} {retry.timezone}")
        result = reconcile(db, config, day, source, now=now, name=name)
        files: list[Path] = []
        if out_dir is not None:
            from transfer_wallet.reconcile.export import export_run

            files = export_run(db, result, out_dir, now=now)
        kinds = ", ".join(f"{k} {v}" for k, v in result.kinds.items()) or "none"
        text = (f"run {result.run_id}: {result.counts.get('report_rows', 0)} report rows, "
                f"{len(result.breaks)} discrepancies ({kinds}), {result.open_count} open")
        return Outcome(ReconcileReport(result, files), "succeeded", text)

    return run_window(db, JOB, body, lease_name=f"{JOB}:{window_of(config.name, day)}",
                      window=window_of(config.name, day), once=True, force=force, provider=config.name,
                      business_date=day, ttl_s=ttl_s, done_elsewhere=lambda: reconciled_by_hand(db, config.name, day))


def reconciled_by_hand(db: Database, provider: str, day: dt.date) -> str | None:
    """Why the window is done if a succeeded reconciliation of it exists (e.g. ``tw reconcile``), else None."""
    row = db.transaction(lambda c: c.execute(
        select(_recon_runs.c.id, _recon_runs.c.finished_at)
        .where(_recon_runs.c.provider == provider, _recon_runs.c.business_date == day,
               _recon_runs.c.outcome == "succeeded")
        .order_by(_recon_runs.c.id.desc()).limit(1)).first(), readonly=True)
    if row is None:
        return None
    return f"reconciliation run {row.id} succeeded at {row.finished_at.isoformat(timespec='seconds')}"


def windows_to_catch_up(db: Database, provider: str, current: dt.date) -> list[dt.date]:
    """The ``CATCH_UP_DAYS`` days before ``current`` (newest first) that never ran to an end.

    A day is left out when a job run of it ended (succeeded, failed, file_missing,
    lease_lost: the history or an open ``FILE_MISSING`` shows it) or a
    reconciliation of it succeeded. What is left never ran, or only crashed.
    Days before the provider's first sign of life here (its first job run or
    reconciliation of any day, or its first transfer) are left out too: a new
    install does not report the days before it existed as missing files.
    """
    days = [current - dt.timedelta(days=n) for n in range(1, CATCH_UP_DAYS + 1)]

    def read(connection: Any) -> set[dt.date]:
        first = _first_day(connection, provider)
        if first is None:
            return set(days)
        ended = connection.execute(select(_job_runs.c.business_date).distinct().where(
            _job_runs.c.job == JOB, _job_runs.c.provider == provider, _job_runs.c.business_date.in_(days),
            _job_runs.c.outcome != "running",
            or_(_job_runs.c.error.is_(None), ~_job_runs.c.error.startswith("crashed:")))).scalars()
        reconciled = connection.execute(select(_recon_runs.c.business_date).distinct().where(
            _recon_runs.c.provider == provider, _recon_runs.c.business_date.in_(days),
            _recon_runs.c.outcome == "succeeded")).scalars()
        return set(ended) | set(reconciled) | {day for day in days if day < first}

    seen = db.transaction(read, readonly=True)
    return [day for day in days if day not in seen]


def _first_day(connection: Any, provider: str) -> dt.date | None:
    """The earliest business date with history for ``provider``, or its first transfer's (UTC) date; None if none."""
    found = [
        connection.execute(select(func.min(_job_runs.c.business_date)).where(
            _job_runs.c.job == JOB, _job_runs.c.provider == provider)).scalar(),
        connection.execute(select(func.min(_recon_runs.c.business_date)).where(
            _recon_runs.c.provider == provider)).scalar(),
    ]
    first_transfer = connection.execute(select(func.min(_transfers.c.created_at)).where(
        _transfers.c.provider == provider)).scalar()
    if first_transfer is not None:
        found.append(first_transfer.date() if isinstance(first_transfer, dt.datetime)
                     else dt.datetime.fromisoformat(str(first_transfer)).date())
    dates = [d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in found if d is not None]
    return min(dates) if dates else None


def tick(db: Database, config: ProviderConfig, *, now: dt.datetime | None = None,
         ttl_s: float = DEFAULT_TTL_S) -> list[JobRun]:
    """The scheduler's retry tick, in the retry hours only: the current window, then catch-up windows.

    The current window (the previous business day) runs if not done. Then at most
    ``CATCH_UP_PER_TICK`` of the ``CATCH_UP_DAYS`` days before it that never ran
    (``windows_to_catch_up``; e.g. the scheduler was down through a whole retry
    window) run now: reconciled if their report is there, else ``FILE_MISSING``.
    Outside the retry hours: ``[]``.
    """
    now = now or utc_now()
    if not schedule_of(config).in_retry_window(now):
        return []
    current = previous_business_date(now, config.report.timezone)
    runs = [run(db, config, current, now=now, ttl_s=ttl_s)]
    for day in windows_to_catch_up(db, config.name, current)[:CATCH_UP_PER_TICK]:
        runs.append(run(db, config, day, now=now, ttl_s=ttl_s))
    return runs


def run_if_due(db: Database, config: ProviderConfig, *, now: dt.datetime | None = None,
               ttl_s: float = DEFAULT_TTL_S) -> JobRun | None:
    """``tick``, returning the current window's run only (None outside the retry hours)."""
    runs = tick(db, config, now=now, ttl_s=ttl_s)
    return runs[0] if runs else None
