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
sees for its window). ``JobRun.summary()`` is one line, ``as_dict()`` JSON-ready.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.history import JobRun, Outcome, run_window
from jobs.lease import DEFAULT_TTL_S, Lease
from transfer_wallet import discrepancies
from transfer_wallet.config import ProviderConfig, provider_config
from transfer_wallet.db import Database
from transfer_wallet.errors import AuthenticationFailedError, ProviderError
from transfer_wallet.models import utc_now
from transfer_wallet.reconcile.classify import SOURCE, fingerprint
from transfer_wallet.reconcile.run import RunResult, fetch_report, reconcile
from transfer_wallet.reconcile_schedule import ReconcileSchedule, previous_business_date

JOB = "reconcile"


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
                      business_date=day, ttl_s=ttl_s)


def run_if_due(db: Database, config: ProviderConfig, *, now: dt.datetime | None = None,
               ttl_s: float = DEFAULT_TTL_S) -> JobRun | None:
    """The scheduler's retry tick: run the current window if it is in its retry hours and not done; else None."""
    now = now or utc_now()
    if not schedule_of(config).in_retry_window(now):
        return None
    return run(db, config, now=now, ttl_s=ttl_s)
