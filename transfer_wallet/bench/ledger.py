"""Ledger benchmark (``tw bench ledger``): transfers per second against baselines, in alternating rounds.

Ours: ``Wallet.transfer`` between two funded players per worker process
(idempotent, committed; on PostgreSQL one round trip). The baselines, measured
in the same run, each round in turn with ours (baseline, ours, baseline, ours ...):

- PostgreSQL (``bench.pgledger``): a **pgledger-style** function doing the work
  pgledger does per transfer (with its ULID ids; ``pgledger_hex``: the same with
  the lighter hex ids it had first), and a **plain SQL** one, the least a
  double-entry transfer needs; all called in autocommit through psycopg; and **pgbench**
  TPC-B-like (simple protocol, scale = the largest client count, same clients).
- SQLite: the stdlib ``sqlite3`` module executing the very statements the
  ledger issues (no SQLAlchemy, no Python service code).

Every side runs on scratch databases that are removed afterwards: the benchmark
never writes into the ledger named by ``--db``. Figures are medians over the
rounds, with their spread; ratios are median over median.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import uuid
from functools import partial

from sqlalchemy.engine import make_url

from transfer_wallet import migrations
from transfer_wallet.bench._harness import (
    FUNDING,
    RoundsResult,
    compare_rounds,
    init_pgbench,
    pgbench_side,
    rate_of,
    run_until,
    run_workers,
    scratch_database,
)
from transfer_wallet.bench.pgledger import measure_pgledger, measure_plain_sql, prepare_baselines
from transfer_wallet.db import SQLITE_BUSY_TIMEOUT_MS, normalise_url, open_database
from transfer_wallet.errors import ConfigError
from transfer_wallet.wallet import Wallet

# -- the ledger side --------------------------------------------------------------------------


def _ledger_worker(url: str, pair: int, seconds: float, start_at: float, queue: multiprocessing.Queue) -> None:
    db = open_database(url, pool_size=1)
    wallet = Wallet(db)
    left, right = f"bench-{pair}-a", f"bench-{pair}-b"
    wallet.balance(left)  # connect before the clock starts
    prefix = uuid.uuid4().hex[:12]

    def step(n: int) -> None:
        payer, payee = (left, right) if n % 2 == 0 else (right, left)
        wallet.transfer(payer, payee, "1.00", reference=f"b{prefix}-{n}")

    transfers = run_until(start_at, seconds, step)
    db.dispose()
    queue.put(transfers)


def _prepare_ledger(url: str, players: int) -> None:
    db = open_database(url)
    try:
        migrations.upgrade(db)
        wallet = Wallet(db)
        for n in range(players):
            for side in ("a", "b"):
                wallet.create_player(f"bench-{n}-{side}", "EUR")
                wallet.deposit(f"bench-{n}-{side}", FUNDING, reference=f"bench-funding-{n}-{side}")
    finally:
        db.dispose()


def measure_ledger(url: str, clients: int, seconds: float) -> tuple[int, float]:
    """(transfers, seconds) with ``clients`` worker processes on a prepared database."""
    return run_workers(_ledger_worker, lambda n: (url, n), clients, seconds)


# -- SQLite baseline: the same statements through the stdlib driver ---------------------------

_SQLITE_STATEMENTS = (
    "INSERT INTO entries (kind, idempotency_key, request_hash, memo, reverses_entry_id, created_at) "
    "VALUES (?, ?, ?, NULL, NULL, ?) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    "UPDATE accounts SET balance_minor = balance_minor + ? WHERE id = ? AND balance_minor + ? >= 0 RETURNING balance_minor",
    "INSERT INTO postings (entry_id, account_id, currency, amount_minor, balance_after_minor) VALUES (?, ?, ?, ?, ?)",
    "SELECT balance_minor FROM accounts WHERE id = ?",
)


def _sqlite_worker(path: str, pair: int, seconds: float, start_at: float, queue: multiprocessing.Queue) -> None:
    connection = sqlite3.connect(path, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    for pragma in ("journal_mode=WAL", f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}", "foreign_keys=ON", "synchronous=FULL"):
        connection.execute(f"PRAGMA {pragma}")
    left, right, left_locked, right_locked = (
        connection.execute("SELECT id FROM accounts WHERE code = ?", (f"player:bench-{pair}-{side}",)).fetchone()[0]
        for side in ("a:main", "b:main", "a:locked", "b:locked")
    )
    insert_entry, update_account, insert_posting, read_balance = _SQLITE_STATEMENTS
    prefix = uuid.uuid4().hex[:12]

    def step(n: int) -> None:
        debit, credit, payer_locked = (left, right, left_locked) if n % 2 == 0 else (right, left, right_locked)
        connection.execute("BEGIN IMMEDIATE")
        entry_id = connection.execute(insert_entry, ("transfer", f"raw{prefix}-{n}", "0" * 64, "2026-01-01 00:00:00")).fetchone()[0]
        after_debit = connection.execute(update_account, (-100, debit, -100)).fetchone()[0]
        after_credit = connection.execute(update_account, (100, credit, 100)).fetchone()[0]
        connection.executemany(insert_posting, [(entry_id, debit, "EUR", -100, after_debit), (entry_id, credit, "EUR", 100, after_credit)])
        connection.execute(read_balance, (payer_locked,)).fetchone()
        connection.execute("COMMIT")

    transfers = run_until(start_at, seconds, step)
    connection.close()
    queue.put(transfers)


def measure_sqlite_baseline(url: str, clients: int, seconds: float) -> tuple[int, float]:
    """(transfers, seconds) of the same statements through raw ``sqlite3`` with ``clients`` processes."""
    path = make_url(url).database or ""
    return run_workers(_sqlite_worker, lambda n: (path, n), clients, seconds)


# -- the whole benchmark ----------------------------------------------------------------------


def run_ledger_benchmark(url: str, client_counts: list[int], seconds: float, rounds: int = 3) -> list[RoundsResult]:
    """Ours and the baselines in alternating rounds for each client count; scratch databases only."""
    if not client_counts or any(c < 1 or c > 64 for c in client_counts):
        raise ConfigError("--clients takes 1..64 per count, e.g. 1,4")
    if not 1 <= seconds <= 3600:
        raise ConfigError("--seconds must be between 1 and 3600")
    postgres = not normalise_url(url).startswith("sqlite")
    results: list[RoundsResult] = []
    scale = max(client_counts)
    with scratch_database(url) as ledger_url:
        _prepare_ledger(ledger_url, scale)
        if not postgres:
            for clients in client_counts:
                results.append(compare_rounds(clients, seconds, {
                    "raw_sqlite3": rate_of(measure_sqlite_baseline, ledger_url, clients, seconds),
                    "ours": rate_of(measure_ledger, ledger_url, clients, seconds)}, rounds))
            return results
        with scratch_database(url) as baseline_url:
            init_pgbench(baseline_url, scale=scale)
            prepare_baselines(baseline_url, scale)
            for clients in client_counts:
                results.append(compare_rounds(clients, seconds, {
                    "pgledger": rate_of(measure_pgledger, baseline_url, clients, seconds),
                    "pgledger_hex": rate_of(partial(measure_pgledger, hex_ids=True), baseline_url, clients, seconds),
                    "plain_sql": rate_of(measure_plain_sql, baseline_url, clients, seconds),
                    "pgbench": pgbench_side(baseline_url, clients, seconds, scale=scale),
                    "ours": rate_of(measure_ledger, ledger_url, clients, seconds)}, rounds))
    return results
