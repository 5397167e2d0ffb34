"""``tw bench``: benchmarks that print their figures (not tests)."""

from __future__ import annotations

import click

from commands._common import CliContext, emit, pass_cli


@click.group()
def bench() -> None:
    """Benchmarks for sizing the database and the provider links.

    \b
    Example:
      tw --db postgresql://postgres@127.0.0.1/postgres bench ledger --clients 1,4 --seconds 10
    """


def _client_counts(value: str) -> list[int]:
    try:
        counts = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 1,4") from None
    if not counts:
        raise click.BadParameter("give at least one client count, e.g. 1,4")
    return counts


@bench.command("ledger")
@click.option("--clients", default="1,4", show_default=True, help="Comma-separated worker-process counts.")
@click.option("--seconds", default=10.0, show_default=True, type=float, help="Measurement time per client count and side.")
@pass_cli
def ledger_bench(ctx: CliContext, clients: str, seconds: float) -> None:
    """Ledger transfers/s (idempotent, committed) against pgbench or raw sqlite3.

    Runs on scratch databases beside --db (same PostgreSQL server, or same
    directory for SQLite) and removes them: the ledger itself is untouched.

    \b
    Example:
      tw --json --db postgresql://postgres@127.0.0.1/postgres bench ledger --clients 1,4 --seconds 10
    """
    from transfer_wallet.benchmarks import run_ledger_benchmark
    from transfer_wallet.config import database_url
    from transfer_wallet.db import normalise_url

    url = database_url(ctx.database_url)
    baseline = "raw sqlite3" if normalise_url(url).startswith("sqlite") else "pgbench TPC-B"
    results = run_ledger_benchmark(url, _client_counts(clients), seconds)
    rows = [r.as_dict() for r in results]
    emit(ctx, {"baseline": baseline, "results": rows}, rows=rows,
         columns=["clients", "transfers_per_s", "baseline_per_s", "ratio", "transfers", "seconds"],
         title=f"ledger transfers/s vs {baseline}")
