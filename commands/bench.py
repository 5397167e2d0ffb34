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
@click.option("--seconds", default=10.0, show_default=True, type=float, help="Measurement time per round and side.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1, 100), help="Alternating rounds per side.")
@pass_cli
def ledger_bench(ctx: CliContext, clients: str, seconds: float, rounds: int) -> None:
    """Ledger transfers/s (idempotent, committed) against baselines, in alternating rounds.

    PostgreSQL: a pgledger-style plain-SQL ledger and pgbench TPC-B; SQLite: raw
    sqlite3 with the same statements. Each round runs every side in turn; the
    table shows medians, spreads and ratios (median over median). Runs on
    scratch databases beside --db and removes them: the ledger itself is untouched.

    \b
    Example:
      tw --json --db postgresql://postgres@127.0.0.1/postgres bench ledger --clients 1,4 --seconds 5 --rounds 3
    """
    from transfer_wallet.bench._harness import table_columns
    from transfer_wallet.bench.ledger import run_ledger_benchmark
    from transfer_wallet.config import database_url

    url = database_url(ctx.database_url)
    rows = [r.as_dict() for r in run_ledger_benchmark(url, _client_counts(clients), seconds, rounds)]
    baselines, columns = table_columns(rows)
    emit(ctx, {"baselines": baselines, "results": rows}, rows=rows, columns=columns,
         title=f"ledger transfers/s, medians of {rounds} alternating rounds of {seconds:g} s")


@bench.command("provider")
@click.argument("provider_name", metavar="PROVIDER", default="acme")
@click.option("--requests", default=2000, show_default=True, type=click.IntRange(50, 1_000_000), help="Transfers per mode.")
@click.option("--seed", default=1, show_default=True, type=int)
@pass_cli
def provider_bench(ctx: CliContext, provider_name: str, requests: int, seed: int) -> None:
    """Transfers/s to the simulator: pooled keep-alive vs a new connection per request, p50/p99.

    Starts its own simulator (separate process, throwaway key); needs no secrets.

    \b
    Example:
      tw --providers sample_data/providers.toml bench provider acme --requests 2000
    """
    from transfer_wallet.config import provider_config
    from transfer_wallet.bench.provider import run_provider_benchmark

    figures = run_provider_benchmark(provider_config(provider_name, ctx.providers_file), requests=requests, seed=seed)
    rows = [{"mode": mode, **values} for mode, values in figures.items() if isinstance(values, dict)]
    emit(ctx, figures, rows=rows, title=f"provider {provider_name}: {requests} transfers per mode")


@bench.command("sessions")
@click.option("--clients", default="1,4", show_default=True, help="Worker processes for the ledger-side run.")
@click.option("--seconds", default=10.0, show_default=True, type=float, help="Measurement time per round and side.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1, 100), help="Alternating rounds per side.")
@click.option("--provider", "provider_name", default="acme", show_default=True, help="Provider config used for the HTTP run.")
@click.option("--sessions", default=200, show_default=True, type=click.IntRange(1, 100_000), help="Full sessions over HTTP.")
@pass_cli
def sessions_bench(ctx: CliContext, clients: str, seconds: float, rounds: int, provider_name: str, sessions: int) -> None:
    """Full sessions/s over HTTP (open + 10 mirrored rounds + close) and ledger-side open+close/s.

    The ledger side uses an in-process provider with 1 and 4 worker processes;
    on PostgreSQL pgbench runs in the same command, in alternating rounds with ours
    (medians, spreads, ratio median over median).

    \b
    Example:
      tw --db postgresql://postgres@127.0.0.1/postgres --providers sample_data/providers.toml bench sessions
    """
    from transfer_wallet.bench._harness import table_columns
    from transfer_wallet.bench.sessions import run_full_sessions, run_ledger_sessions
    from transfer_wallet.config import database_url, provider_config

    url = database_url(ctx.database_url)
    full = run_full_sessions(url, provider_config(provider_name, ctx.providers_file), sessions)
    ledger_side = [r.as_dict() for r in run_ledger_sessions(url, _client_counts(clients), seconds, rounds)]
    document = {"full_sessions_http": full, "ledger_sessions": ledger_side}
    if ctx.as_json:
        emit(ctx, document)
        return
    emit(ctx, full, title="full sessions over HTTP (open + 10 mirrored rounds + close)")
    _, columns = table_columns(ledger_side)
    emit(ctx, document, rows=ledger_side, columns=columns,
         title=f"ledger-side session open+close/s (in-process provider), medians of {rounds} alternating rounds "
               f"of {seconds:g} s")


@bench.command("reconcile")
@click.option("--rows", default=100_000, show_default=True, type=click.IntRange(1000, 20_000_000),
              help="Ledger transfers in the provider-day (the report has about as many rows).")
@click.option("--seed", default=1, show_default=True, type=int)
@pass_cli
def reconcile_bench(ctx: CliContext, rows: int, seed: int) -> None:
    """One provider-day reconciled end to end against its floor, datacompy and the planted breaks.

    Builds a scratch database beside --db (SQLite or PostgreSQL) with N transfers and
    a report with about 1 % planted discrepancies of every type, then prints the floor,
    our stages, peak memory, datacompy's time and the accuracy.

    \b
    Example:
      tw --json --db postgresql://postgres@127.0.0.1/postgres bench reconcile --rows 1000000
    """
    from transfer_wallet.bench.reconcile import run_reconcile_benchmark
    from transfer_wallet.config import database_url

    figures = run_reconcile_benchmark(database_url(ctx.database_url), rows, seed=seed)
    if ctx.as_json:
        emit(ctx, figures)
        return
    flat = {**{f"floor_{k}": v for k, v in figures["floor"].items()}, **{f"ours_{k}_s": v for k, v in figures["ours"].items()},
            "peak_rss_mb": figures["peak_rss_mb"], "datacompy_s": figures["datacompy"]["seconds"],
            **figures["accuracy"], "end_to_end_vs_floor": figures["end_to_end_vs_floor"],
            "datacompy_vs_match_classify": figures["datacompy_vs_match_classify"]}
    rows_out = [{"figure": k, "value": round(v, 3) if isinstance(v, float) else v} for k, v in flat.items()]
    emit(ctx, figures, rows=rows_out, columns=["figure", "value"],
         title=f"reconcile {rows} rows on {figures['backend']} (shared machine: compare ratios, not seconds)")
