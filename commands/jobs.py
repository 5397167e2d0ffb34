"""``tw jobs``: run a scheduled job once, or run the scheduler."""

from __future__ import annotations

import click

import datetime as dt

from commands._common import INSTANT, CliContext, emit, pass_cli

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
    """Run job NAME once (it takes the job's lease; skipped if held elsewhere).

    \b
    Example:
      tw jobs run in-doubt
    """
    from jobs import in_doubt, timeouts
    from transfer_wallet.runtime import session_manager

    job = {"timeouts": timeouts.run, "in-doubt": in_doubt.run}[name]
    with session_manager(ctx.database(), ctx.providers_file) as manager:
        report = job(manager, now=now)
    if report is None:
        emit(ctx, {"job": name, "skipped": True}, text=f"{name}: lease held by another process, skipped")
        return
    document = {"job": name, "skipped": False, **report.as_dict()}
    emit(ctx, document, text=f"{name}: " + ", ".join(f"{k} {v}" for k, v in report.as_dict().items() if k != "errors")
         + "".join(f"\n  error: {e}" for e in report.errors))


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
