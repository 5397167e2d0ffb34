"""``tw reconcile``: a provider's daily report against the ledger, discrepancies for finance, exports."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from commands._common import CliContext, emit, pass_cli

#: Exit code when the run leaves discrepancies open for the day (0: nothing open, 1: error).
EXIT_OPEN = 3


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
    result = run_reconcile(ctx.database(), config, day, source, now=now, name=name)
    document = result.as_dict()
    if out_dir is not None:
        from transfer_wallet.reconcile.export import export_run

        document["files"] = [str(p) for p in export_run(ctx.database(), result, out_dir, now=now)]
    rows = [{"type": kind, "count": count} for kind, count in result.kinds.items()]
    emit(ctx, document, rows=rows, columns=["type", "count"],
         title=f"{provider_name} {day}: run {result.run_id}, {result.open_count} open")
    if not ctx.as_json:
        click.echo(f"run {result.run_id}: {len(result.breaks)} discrepancies found, {result.open_count} open"
                   + (f"; files in {out_dir}" if out_dir else ""))
    sys.exit(EXIT_OPEN if result.open_count else 0)
