"""``tw jobs``: run a scheduled job once, or run the scheduler."""

from __future__ import annotations

import click

import datetime as dt

from commands._common import INSTANT, CliContext, emit, fail, pass_cli

JOB_NAMES = ("timeouts", "in-doubt")


@click.group()
def jobs() -> None:
    """Scheduled jobs: timeout sweeps and in-doubt resolution.

    \b
    Example:
      tw jobs run timeouts
    """


@jobs.command()
@click.argument("name", type=click.Choice(JOB_NAMES))
@click.option("--now", type=INSTANT, help="Pretend it is this ISO 8601 instant (with offset); default: now.")
@pass_cli
def run(ctx: CliContext, name: str, now: dt.datetime | None) -> None:
    """Run job NAME once under its lease.

    If another live process holds the lease, the run is skipped and says who
    holds it and until when; a skip exits 0 (with --json: skipped, holder and
    expires_at). A lease held by a dead process on this host is taken over at
    once; one held elsewhere lapses within seconds of its holder dying. If the
    lease was lost while the job ran (taken over, or the database unreachable for
    longer than the lease lives), the report is printed and the exit code is 1.

    \b
    Example:
      tw jobs run in-doubt
      tw --json jobs run timeouts
    """
    from jobs import in_doubt, timeouts
    from transfer_wallet.runtime import session_manager

    job = {"timeouts": timeouts.run, "in-doubt": in_doubt.run}[name]
    with session_manager(ctx.database(), ctx.providers_file) as manager:
        outcome = job(manager, now=now)
    if outcome.report is None:
        emit(ctx, outcome.as_dict(), text=outcome.summary())
        return
    report = outcome.report
    emit(ctx, outcome.as_dict(), text=f"{name}: " + ", ".join(f"{k} {v}" for k, v in report.as_dict().items() if k not in ("errors", "stopped_early"))
         + "".join(f"\n  error: {e}" for e in report.errors))
    if outcome.lease_lost:
        fail(f"{name}: the lease was lost during the run ({outcome.lease_lost}); another process may have run it too")


@jobs.command()
@pass_cli
def schedule(ctx: CliContext) -> None:
    """Run the scheduler in the foreground (timeouts every 30 s, in-doubt every 60 s).

    \b
    Example:
      tw jobs schedule
    """
    import logging

    from jobs.scheduler import build
    from transfer_wallet.runtime import session_manager

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with session_manager(ctx.database(), ctx.providers_file) as manager:
        scheduler = build(manager)
        click.echo("scheduler running (Ctrl-C to stop)", err=True)
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            scheduler.shutdown(wait=False)
