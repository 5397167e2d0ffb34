"""Concurrent processes on the same players: exact balances, never negative, no lost update,
no deadlock reaching the caller (PostgreSQL, plus SQLite's single-writer path)."""

from __future__ import annotations

import multiprocessing
import random

import pytest

from transfer_wallet.db import open_database
from transfer_wallet.errors import InsufficientFundsError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.wallet import Wallet

PLAYERS = ("P1", "P2", "P3")
INITIAL_CENTS = 5_000


def _worker(url: str, worker: int, operations: int, queue) -> None:
    """Random deposits, withdrawals and transfers; reports what succeeded."""
    db = open_database(url, pool_size=1)
    wallet = Wallet(db)
    rng = random.Random(worker)
    succeeded: list[tuple[str, str, str | None, int]] = []
    errors: list[str] = []
    for step in range(operations):
        kind = rng.choice(("deposit", "withdraw", "withdraw", "transfer"))
        player = rng.choice(PLAYERS)
        other = rng.choice([p for p in PLAYERS if p != player])
        amount = rng.randint(1, 2_500)
        text = f"{amount // 100}.{amount % 100:02d}"
        reference = f"w{worker}-{step}"
        try:
            if kind == "transfer":
                wallet.transfer(player, other, text, reference=reference)
            else:
                getattr(wallet, kind)(player, text, reference=reference)
            succeeded.append((kind, player, other if kind == "transfer" else None, amount))
        except InsufficientFundsError:
            pass
        except Exception as exc:  # a deadlock or serialization failure reaching the caller
            errors.append(f"{type(exc).__name__}: {exc}")
    db.dispose()
    queue.put((succeeded, errors))


def run_concurrently(db, processes: int, operations: int) -> None:
    wallet = Wallet(db)
    for player in PLAYERS:
        wallet.create_player(player, "EUR")
        wallet.deposit(player, f"{INITIAL_CENTS // 100}.00", reference=f"seed-{player}")
    url = db.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_worker, args=(url, n, operations, queue)) for n in range(processes)]
    for process in workers:
        process.start()
    results = [queue.get(timeout=300) for _ in workers]
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    expected = {p: INITIAL_CENTS for p in PLAYERS}
    for succeeded, errors in results:
        assert errors == [], errors[:3]
        for kind, player, other, amount in succeeded:
            if kind == "deposit":
                expected[player] += amount
            elif kind == "withdraw":
                expected[player] -= amount
            else:
                expected[player] -= amount
                expected[other] += amount
    successes = sum(len(s) for s, _ in results)
    assert successes > processes * operations // 3  # contention did not just refuse everything
    for player in PLAYERS:
        balance = wallet.balance(player)
        assert balance.available.amount_minor == expected[player]  # no lost update
        assert balance.available.amount_minor >= 0
    assert check_ledger(db).clean


@pytest.mark.postgres
def test_concurrent_processes_on_postgres_lose_nothing_and_never_deadlock(pg_db):
    run_concurrently(pg_db, processes=6, operations=150)


def test_concurrent_processes_on_sqlite_lose_nothing(sqlite_db):
    run_concurrently(sqlite_db, processes=3, operations=60)
