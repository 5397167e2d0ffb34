"""``tw reconcile``: a provider's daily report against the ledger, discrepancies for finance, exports."""

from __future__ import annotations

import datetime as dt
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import click

from commands._common import CliContext, emit, pass_cli

if TYPE_CHECKING:  # rich is imported only when a bar is drawn: `tw --help` stays light
    from rich.console import Console

#: Exit code when the run leaves discrepancies open for the day (0: nothing open, 1: error).
EXIT_OPEN = 3
#: A report at least this large shows a progress bar (on stderr, and only when it is a terminal).
LARGE_REPORT_BYTES = 10_000_000
STAGE_NAMES = {"ingest": "reading the report", "ledger_read": "reading the ledger",
               "match_classify": "matching and classifying", "persist": "storing discrepancies",
               "exports": "writing the exports"}


@contextmanager
def stage_progress(console: Console | None, total: int) -> Iterator[Callable[[str], None]]:
    """A callback that advances a bar by one stage per call, drawn on ``console`` (None: no bar)."""
    if console is None:
        yield lambda stage: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:<26}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=total)
        started = [0]

        def step(stage: str) -> None:
            bar.update(task, completed=started[0], description=STAGE_NAMES.get(stage, stage), refresh=True)
            started[0] += 1

        yield step
        bar.update(task, completed=total, description="done")


def progress_console(report_file: Path | None) -> Console | None:
    """stderr as a rich console when it is a terminal and the report is large (or fetched); else None."""
    if not sys.stderr.isatty():
        return None
    if report_file is not None and (not report_file.is_file() or report_file.stat().st_size < LARGE_REPORT_BYTES):
        return None
    from rich.console import Console

    return Console(stderr=True)


@click.command()
@click.option("--provider", "provider_name", required=True, help="Provider name from the providers TOML.")
@click.option("--date", "business_date", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Business date (YYYY-MM-DD) in the provider's report timezone.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The provider's report file (default: fetch the signed report from the provider).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write discrepancies.csv, summary.csv, reconciliation.xlsx and report.html here.")
@pass_cli
def reconcile(ctx: CliContext, provider_name: str, business_date: dt.datetime, report_file: Path | None,
              out_dir: Path | None) -> None:
    """Reconcile a provider's daily transfer report against the ledger.

    Exits 0 when nothing is open for the day, 3 when discrepancies are open, 1 on error.
    A large report shows a progress bar by stage on stderr when it is a terminal.

    \b
    Examples:
      tw reconcile --provider acme --date 2026-11-24 --report acme-2026-11-24.csv --out recon/
      tw --json reconcile --provider acme --date 2026-11-24
    """
    from transfer_wallet.config import provider_config
    from transfer_wallet.models import utc_now
    from transfer_wallet.reconcile.run import fetch_report
    from transfer_wallet.reconcile.run import reconcile as run_reconcile

    config = provider_config(provider_name, ctx.providers_file)
    day = business_date.date()
    source: bytes | Path = report_file if report_file is not None else b""
    name = None
    if report_file is None:
        source, name = fetch_report(config, day)
    now = utc_now()
    from transfer_wallet.reconcile.export import export_run
    from transfer_wallet.reconcile.run import STAGES

    with stage_progress(progress_console(report_file), len(STAGES) + (out_dir is not None)) as step:
        result = run_reconcile(ctx.database(), config, day, source, now=now, name=name, progress=step)
        document = result.as_dict()
        if out_dir is not None:
            step("exports")
            document["files"] = [str(p) for p in export_run(ctx.database(), result, out_dir, now=now)]
    rows = [{"type": kind, "count": count} for kind, count in result.kinds.items()]
    emit(ctx, document, rows=rows, columns=["type", "count"],
         title=f"{provider_name} {day}: run {result.run_id}, {result.open_count} open")
    if not ctx.as_json:
        click.echo(f"run {result.run_id}: {len(result.breaks)} discrepancies found, {result.open_count} open"
                   + (f"; files in {out_dir}" if out_dir else ""))
    sys.exit(EXIT_OPEN if result.open_count else 0)
