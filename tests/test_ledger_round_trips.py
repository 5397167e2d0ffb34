"""What a ledger transfer costs on the wire, and that the short path keeps every money rule.

PostgreSQL: a wallet transfer is one round trip (the ``tw_post_entry`` call in
autocommit, no BEGIN/COMMIT), counted from libpq's own trace of the messages
(one ``ReadyForQuery`` per round trip). SQLite: the statements the driver runs,
counted by sqlite3's trace callback. The races run on both databases.
"""

from __future__ import annotations

import tempfile
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from sqlalchemy import event, text

from transfer_wallet.db import Database
from transfer_wallet.errors import IdempotencyConflictError, InsufficientFundsError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.wallet import Wallet


def _funded(db: Database, cents: dict[str, int]) -> Wallet:
    wallet = Wallet(db)
    for player, amount in cents.items():
        wallet.create_player(player, "EUR")
        if amount:
            wallet.deposit(player, f"{amount // 100}.{amount % 100:02d}", reference=f"seed-{player}")
    return wallet


@contextmanager
def postgres_round_trips(db: Database) -> Iterator[list[int]]:
    """Yields ``[count]``: round trips on every connection checked out inside the block."""
    from psycopg import pq

    traces: list[Any] = []

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        trace = tempfile.TemporaryFile()
        dbapi_connection.pgconn.trace(trace.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        traces.append((dbapi_connection, trace))

    count = [0]
    event.listen(db.engine, "checkout", on_checkout)
    try:
        yield count
    finally:
        event.remove(db.engine, "checkout", on_checkout)
        for dbapi_connection, trace in traces:
            dbapi_connection.pgconn.untrace()
            trace.seek(0)
            count[0] += trace.read().decode().count("\tReadyForQuery")
            trace.close()


@pytest.mark.postgres
def test_a_transfer_on_postgres_is_one_round_trip_posted_refused_or_conflicting(pg_db):
    wallet = _funded(pg_db, {"P1": 1_000, "P2": 0})
    # Warm up: both players' accounts cached, and the posting call prepared by psycopg (on
    # its 5th use on a connection, which costs that call one extra round trip, once).
    for n in range(5):
        wallet.transfer("P1", "P2", "0.01", reference=f"warm-up-{n}")
    outcomes = []
    for reference, amount in (("t1", "2.50"), ("t2", "2.50"), ("t1", "2.50"), ("t3", "99.00")):
        with postgres_round_trips(pg_db) as trips:
            try:
                outcomes.append(wallet.transfer("P1", "P2", amount, reference=reference).as_dict())
            except InsufficientFundsError as exc:
                outcomes.append({"refused": str(exc)})
        # a replay then reads the balance as it is now (the posting returns it as it was): two
        assert trips[0] == (2 if outcomes[-1].get("replayed") else 1), (reference, outcomes[-1])
    with postgres_round_trips(pg_db) as trips, pytest.raises(IdempotencyConflictError, match="transfer:t1"):
        wallet.transfer("P1", "P2", "2.51", reference="t1")
    assert trips[0] == 1

    first, second, replay, refused = outcomes
    assert (first["available"], first["locked"], first["replayed"]) == ("7.45", "0.00", False)
    assert (second["available"], second["available_after"]) == ("4.95", "4.95")
    assert (replay["replayed"], replay["entry_id"], replay["available_after"]) == (True, first["entry_id"], "7.45")
    assert replay["available"] == "4.95"
    assert refused == {"refused": "insufficient funds in player:P1:main: 4.95 EUR available, 99.00 EUR needed"}
    assert wallet.balance("P2").available.format() == "5.05"
    assert check_ledger(pg_db).clean


def test_a_transfer_on_sqlite_runs_only_the_posting_statements(sqlite_db):
    wallet = _funded(sqlite_db, {"P1": 1_000, "P2": 0})
    wallet.transfer("P1", "P2", "0.01", reference="warm-up")
    statements: list[str] = []

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(lambda sql: statements.append(" ".join(sql.split()[:2])))

    sqlite_db.engine.dispose()  # new connections, each traced
    event.listen(sqlite_db.engine, "connect", on_connect)
    try:
        result = wallet.transfer("P1", "P2", "2.50", reference="t1")
    finally:
        event.remove(sqlite_db.engine, "connect", on_connect)
    assert result.balance.available.format() == "7.49"
    # the PRAGMAs of a new connection, then: the write lock, entry, two guarded updates in id
    # order, two postings, the payer's locked balance (asked of the posting), commit.
    assert [s for s in statements if not s.startswith("PRAGMA")] == [
        "BEGIN IMMEDIATE", "INSERT INTO", "UPDATE accounts", "UPDATE accounts",
        "INSERT INTO", "INSERT INTO", "SELECT balance_minor", "COMMIT",
    ]


def _race(threads: int, job: Any) -> list[Any]:
    """Run ``job(n)`` in ``threads`` threads released together; their results or exceptions."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = job(n)
        except Exception as exc:  # the outcome under test
            results[n] = exc

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return results


def test_racing_transfers_never_overdraw_the_payer(db):
    wallet = _funded(db, {"P1": 1_000, "P2": 0, "P3": 0})
    results = _race(8, lambda n: wallet.transfer("P1", ("P2", "P3")[n % 2], "3.00", reference=f"race-{n}"))
    paid = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, InsufficientFundsError)]
    assert (len(paid), len(refused)) == (3, 5), results
    assert wallet.balance("P1").available.format() == "1.00"
    assert sorted(r.available_after.format() for r in paid) == ["1.00", "4.00", "7.00"]
    assert check_ledger(db).clean


def test_racing_twins_of_one_reference_move_the_money_once_and_conflicts_are_refused(db):
    wallet = _funded(db, {"P1": 500, "P2": 0})
    amounts = ["4.00", "4.00", "4.00", "3.00", "4.00", "3.00"]
    results = _race(len(amounts), lambda n: wallet.transfer("P1", "P2", amounts[n], reference="twin"))
    done = [(amounts[n], r) for n, r in enumerate(results) if not isinstance(r, Exception)]
    conflicts = [amounts[n] for n, r in enumerate(results) if isinstance(r, IdempotencyConflictError)]
    assert len(done) + len(conflicts) == len(amounts), results
    winner = {amount for amount, _ in done}
    assert len(winner) == 1 and not winner & set(conflicts), results  # one request won, the other was refused
    assert len({r.entry_id for _, r in done}) == 1
    assert sum(not r.replayed for _, r in done) == 1
    moved = 400 if winner == {"4.00"} else 300
    assert wallet.balance("P2").available.amount_minor == moved
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM entries WHERE kind = 'transfer'")).scalar_one() == 1
    assert check_ledger(db).clean


def test_posting_arrays_go_to_postgresql_as_literals_of_checked_values() -> None:
    from transfer_wallet.ledger_post import pg_array as _pg_array

    assert _pg_array([2, 5]) == "{2,5}"
    assert _pg_array([-100, 100]) == "{-100,100}"
    assert _pg_array([True, False]) == "{t,f}"
    assert _pg_array(["EUR", "JPY"]) == "{EUR,JPY}"
    assert _pg_array([]) == "{}"
    for bad in ("EU,R", "eur", "EUR\n", "{EUR}", 1.5, None):
        with pytest.raises(ValueError, match="not an array value"):
            _pg_array([bad])  # type: ignore[list-item]


@pytest.mark.postgres
def test_the_posting_function_refuses_two_legs_on_one_floored_account_and_writes_nothing(pg_db):
    from sqlalchemy.exc import DBAPIError

    from transfer_wallet import ledger

    wallet = _funded(pg_db, {"P1": 92, "P2": 0})
    main = pg_db.transaction(lambda c: ledger.player_accounts(pg_db, c, "P1"))[1]
    cashier = pg_db.transaction(lambda c: ledger.system_account(pg_db, c, "cashier", "EUR"))
    call = ("SELECT outcome FROM tw_post_entry('transfer', 'dup-legs', 'h', NULL, NULL, now(), "
            f"'{{{main.id},{main.id},{cashier.id}}}'::integer[], '{{EUR,EUR,EUR}}'::varchar[], "
            "'{-60,-60,120}'::bigint[], '{t,t,f}'::boolean[], '{}'::integer[])")
    with pytest.raises(DBAPIError, match="is in two legs of one entry"):
        pg_db.transaction(lambda c: c.exec_driver_sql(call).all())
    assert wallet.balance("P1").available.amount_minor == 92
    assert pg_db.transaction(lambda c: c.execute(text("SELECT count(*) FROM entries WHERE idempotency_key = 'dup-legs'")).scalar()) == 0
    assert check_ledger(pg_db).clean
