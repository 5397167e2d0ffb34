"""``tw jobs``: run a scheduled job once, list the job history, or run the scheduler."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from typing import TYPE_CHECKING

import click

from commands._common import INSTANT, CliContext, emit, fail, list_output, pass_cli
from commands._render import Column

if TYPE_CHECKING:  # pragma: no cover
    from jobs.history import JobRun

JOB_NAMES = ("timeouts", "in-doubt", "reconcile", "key-age")
#: ``tw jobs list``: the job, its last window and outcome stay; at a narrow width the rest goes first.
JOB_COLUMNS = [Column("job", "id", 0), Column("schedule", "text", 2), Column("next run", "time", 3),
               Column("last outcome", "status", 0), Column("last window", "id", 1), Column("last started", "time", 4)]
RUN_COLUMNS = [Column("job", "id", 0), Column("window", "id", 1), Column("outcome", "status", 0),
               Column("started_at", "time", 2), Column("finished_at", "time", 4), Column("holder", "id", 5),
               Column("summary", "text", 3)]
#: ``tw jobs run reconcile``: the report is not there yet (FILE_MISSING recorded; the scheduler looks again).
EXIT_FILE_MISSING = 3


@click.group()
def jobs() -> None:
    """Scheduled jobs: sweeps, nightly reconciliation, key age; their history; the scheduler.

    \b
    Example:
      tw jobs run timeouts
      tw jobs list
      tw jobs schedule
    """


@jobs.command()
@click.argument("name", type=click.Choice(JOB_NAMES))
@click.option("--now", type=INSTANT, help="Pretend it is this ISO 8601 instant (with offset); default: now.")
@click.option("--provider", "provider_name", help="reconcile: the provider (required).")
@click.option("--date", "business_date", type=click.DateTime(["%Y-%m-%d"]),
              help="reconcile: the business date (default: the provider's previous day).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="reconcile: this report file instead of the configured source.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="reconcile: also write the finance files (CSV, XLSX, HTML) here.")
@click.option("--force", is_flag=True, help="reconcile, key-age: run the window even if it already succeeded.")
@pass_cli
def run(ctx: CliContext, name: str, now: dt.datetime | None, provider_name: str | None,
        business_date: dt.datetime | None, report_file: Path | None, out_dir: Path | None, force: bool) -> None:
    """Run job NAME once under its lease: the same code path as the scheduler.

    If another live process holds the lease, the run is skipped and says who
    holds it and until when (exit 0). A reconcile or key-age window that already
    succeeded is not run again unless --force (exit 0). Exit 1 when the run
    failed or its lease was lost during the run (another process may have run
    it too); exit 3 when the reconcile report is not there (FILE_MISSING).

    \b
    Example:
      tw jobs run in-doubt
      tw jobs run reconcile --provider acme --date 2026-12-01 --report acme-2026-12-01.csv
      tw jobs run key-age
      tw --json jobs run timeouts
    """
    reconcile_only = {"--provider": provider_name, "--date": business_date, "--report": report_file,
                      "--out": out_dir}
    if name != "reconcile" and any(v is not None for v in reconcile_only.values()):
        used = ", ".join(k for k, v in reconcile_only.items() if v is not None)
        raise click.UsageError(f"{used}: only for 'tw jobs run reconcile'")
    if name == "reconcile" and provider_name is None:
        raise click.UsageError("tw jobs run reconcile needs --provider NAME")
    from commands.progress import working

    with working(f"running {name}"):
        outcome = _run_one(ctx, name, now, provider_name, business_date.date() if business_date else None,
                           report_file, out_dir, force)
    lines = [outcome.summary()]
    lines += [f"  error: {e}" for e in getattr(outcome.report, "errors", [])]
    emit(ctx, outcome.as_dict(), text="\n".join(lines))
    if outcome.outcome == "failed":
        fail(outcome.error or "the run failed")
    if outcome.lease_lost:
        fail(f"{name}: the lease was lost during the run ({outcome.lease_lost}); another process may have run it too")
    if outcome.outcome == "file_missing":
        raise SystemExit(EXIT_FILE_MISSING)


def _run_one(ctx: CliContext, name: str, now: dt.datetime | None, provider_name: str | None,
             business_date: dt.date | None, report_file: Path | None, out_dir: Path | None, force: bool) -> JobRun:
    """The one job function for NAME, with its lease TTL from ``[jobs]``."""
    from jobs import in_doubt, key_age, reconcile, timeouts
    from jobs.settings import load_settings
    from transfer_wallet.runtime import session_manager

    ttl_s = load_settings(ctx.providers_file).lease_ttl_s
    if name == "reconcile":
        assert provider_name is not None
        return reconcile.run(ctx.database(), provider_name, business_date, now=now, report=report_file,
                             out_dir=out_dir, force=force, providers_file=ctx.providers_file, ttl_s=ttl_s)
    if name == "key-age":
        return key_age.run(ctx.database(), ctx.providers().values(), now=now, force=force,
                           ttl_s=ttl_s)
    job = {"timeouts": timeouts.run, "in-doubt": in_doubt.run}[name]
    with session_manager(ctx.database(), ctx.providers_file) as manager:
        return job(manager, now=now, ttl_s=ttl_s)


@jobs.command("list")
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1, 100), help="History rows per job.")
@list_output
@pass_cli
def list_jobs(ctx: CliContext, runs: int) -> None:
    """Each job: its schedule, its next run (from the configuration) and its last runs.

    \b
    Example:
      tw jobs list
      tw --json jobs list --runs 20
    """
    from jobs.scheduler import overview
    from jobs.settings import load_settings
    from transfer_wallet.config import load_providers
    from transfer_wallet.sessions import SessionManager

    entries = overview(SessionManager(ctx.database(), {}, {}), load_providers(ctx.providers_file),
                       load_settings(ctx.providers_file), runs=runs)
    rows = []
    for entry in entries:
        last = entry["runs"][0] if entry["runs"] else {}
        rows.append({"job": entry["id"], "schedule": _schedule(entry["schedule"]), "next run": _when(entry["next_run"]),
                     "last outcome": last.get("outcome", "never run"), "last window": last.get("window"),
                     "last started": _when(last.get("started_at"))})
    emit(ctx, {"jobs": entries}, rows=rows, columns=JOB_COLUMNS, title="jobs")
    if ctx.format != "table":
        return  # one document or one table for scripts; the history is in --json
    history = sorted((dict(r, job=e["id"]) for e in entries for r in e["runs"]), key=lambda r: r["started_at"],
                     reverse=True)
    emit(ctx, {}, rows=[{**r, "started_at": _when(r["started_at"]), "finished_at": _when(r["finished_at"])}
                        for r in history],
         columns=RUN_COLUMNS, title="last runs")


def _schedule(text: str) -> str:
    """``every 3600 s`` as ``every 1h`` for people (the JSON keeps the configuration's words)."""
    import re

    from commands._render import show_duration

    return re.sub(r"every (\d+) s\b", lambda m: f"every {show_duration(int(m.group(1)))}", text)


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


@jobs.command()
@pass_cli
def schedule(ctx: CliContext) -> None:
    """Run the scheduler in the foreground until SIGTERM or Ctrl-C (then the running jobs finish; exit 0).

    Sweeps on intervals, key-age daily, each provider's nightly reconciliation at
    its [providers.NAME.reconcile] time; intervals and times from the providers
    file ([jobs] table). Several processes may share one PostgreSQL database.

    \b
    Example:
      tw jobs schedule
      TW_DATABASE_URL=postgresql://tw@db/tw tw --providers /etc/tw/providers.toml jobs schedule
    """
    import logging

    from jobs.scheduler import serve
    from jobs.settings import load_settings
    from transfer_wallet.config import load_providers
    from transfer_wallet.runtime import session_manager

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per run: ours
    providers, settings = load_providers(ctx.providers_file), load_settings(ctx.providers_file)
    with session_manager(ctx.database(), ctx.providers_file) as manager:
        serve(manager, providers, settings,
              ready=lambda: click.echo("scheduler running (SIGTERM or Ctrl-C to stop)", err=True))
