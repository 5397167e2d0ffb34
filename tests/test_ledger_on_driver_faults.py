"""``Database.on_driver`` when things go wrong: lost connections, a fork, a signal, errors of every kind.

Real SQLite files and a real PostgreSQL: connections are killed with ``pg_terminate_backend``
(a server restart or a failover), closed under the pool, interrupted by ``SIGALRM``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
from typing import Any, NoReturn

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from transfer_wallet import ledger
from transfer_wallet.db import Database
from transfer_wallet.ledger import check_ledger
from transfer_wallet.wallet import Wallet


def _funded(db: Database) -> Wallet:
    wallet = Wallet(db)
    for player in ("P1", "P2"):
        wallet.create_player(player, "EUR")
    wallet.deposit("P1", "100.00", reference="seed")
    return wallet


def _entries(db: Database) -> dict[str, int]:
    with db.engine.connect() as connection:
        return {key: entry_id for entry_id, key in connection.execute(text("SELECT id, idempotency_key FROM entries"))}


def _pooled_connections(db: Database, count: int) -> None:
    """Leave ``count`` idle connections in the pool (each checked out at once, then returned)."""
    held = [db.engine.raw_connection() for _ in range(count)]
    for connection in held:
        connection.close()


def _kill_every_connection(db: Database) -> int:
    outside = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(outside, autocommit=True) as killer:
        row = killer.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.postgres
def test_a_server_restart_costs_no_transfer_and_the_whole_pool_is_replaced(pg_db):
    """Every pooled connection dies at once: the first transfer to meet one invalidates the pool and runs again."""
    wallet = _funded(pg_db)
    wallet.transfer("P1", "P2", "1.00", reference="before")  # both players' accounts cached: on_driver alone
    _pooled_connections(pg_db, 4)
    assert _kill_every_connection(pg_db) == 4
    results = [wallet.transfer("P1", "P2", "1.00", reference=f"after-{n}") for n in range(4)]
    assert [result.replayed for result in results] == [False] * 4
    assert [result.balance.available.format() for result in results] == ["98.00", "97.00", "96.00", "95.00"]
    assert len({result.entry_id for result in results}) == 4 and check_ledger(pg_db).clean


def test_a_connection_lost_mid_posting_is_replaced_and_the_posting_runs_again(sqlite_db):
    """SQLite's lost connection ("Cannot operate on a closed database") is handled like PostgreSQL's."""
    wallet = _funded(sqlite_db)
    _, payer, _ = ledger.cached_player_accounts(sqlite_db, "P1")
    _, payee, _ = ledger.cached_player_accounts(sqlite_db, "P2")
    legs = [ledger.Leg(payer, -100), ledger.Leg(payee, 100)]
    connections: list[Any] = []

    def work(cursor: Any) -> ledger.Posted:
        connections.append(cursor.connection)
        if len(connections) == 1:
            cursor.connection.close()  # lost under the unit of work, before its first statement
        return ledger.post(cursor, kind="transfer", idempotency_key="after-loss", legs=legs)

    posted = sqlite_db.on_driver(work)
    assert len(connections) == 2 and connections[0] is not connections[1]
    assert _entries(sqlite_db)["after-loss"] == posted.entry_id and not posted.replayed
    assert wallet.balance("P1").available.format() == "99.00" and check_ledger(sqlite_db).clean

    def lose_every_time(cursor: Any) -> ledger.Posted:
        connections.append(cursor.connection)
        cursor.connection.close()
        return ledger.post(cursor, kind="transfer", idempotency_key="lost-twice", legs=legs)

    with pytest.raises(DBAPIError, match="closed database") as raised:  # once more, not more: then as transaction's
        sqlite_db.on_driver(lose_every_time)
    assert raised.value.connection_invalidated and len(connections) == 4
    assert "lost-twice" not in _entries(sqlite_db)


def test_a_forked_child_posts_on_connections_of_its_own(db, tmp_path):
    """Parent and child post at once after the fork: each is told its own entry, none another's."""
    wallet = _funded(db)
    wallet.transfer("P1", "P2", "1.00", reference="before-fork")  # the pool holds a used connection
    out = tmp_path / "child.jsonl"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the file and exits at once
        code = 0
        try:
            with out.open("w") as report:
                for n in range(20):
                    result = wallet.transfer("P1", "P2", "0.01", reference=f"child-{n}")
                    report.write(json.dumps([f"transfer:child-{n}", result.entry_id]) + "\n")
        except BaseException as exc:
            out.with_suffix(".err").write_text(repr(exc))
            code = 1
        os._exit(code)
    told = {f"transfer:parent-{n}": wallet.transfer("P1", "P2", "0.01", reference=f"parent-{n}").entry_id
            for n in range(20)}
    _, status = os.waitpid(pid, 0)
    errors = out.with_suffix(".err")
    assert status == 0, errors.read_text() if errors.exists() else status
    told.update(json.loads(line) for line in out.read_text().splitlines())
    entries = _entries(db)
    assert len(told) == 40 and all(entries[key] == entry_id for key, entry_id in told.items())
    assert wallet.balance("P1").available.format() == "98.60" and check_ledger(db).clean


@pytest.mark.postgres
@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_a_signal_during_a_lock_wait_raises_its_own_exception_and_the_connection_is_dropped(pg_db):
    wallet = _funded(pg_db)
    wallet.transfer("P1", "P2", "1.00", reference="warm")
    pooled = pg_db.engine.raw_connection()
    driver = pooled.driver_connection  # the one connection the pool holds, which the transfer will take
    pooled.close()
    outside = pg_db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def deadline(*_: Any) -> None:
        raise TimeoutError("request deadline")

    previous = signal.signal(signal.SIGALRM, deadline)
    with psycopg.connect(outside) as holder:
        holder.execute("SELECT 1 FROM accounts WHERE player_id = 'P1' FOR UPDATE")
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            with pytest.raises(TimeoutError, match="request deadline"):
                wallet.transfer("P1", "P2", "2.00", reference="slow")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert driver.closed  # type: ignore[union-attr]  # dropped, not pooled mid-statement
    # the interrupted statement may still have committed once the lock came free: a retry of the
    # same reference then replays it; either way there is one entry
    again = wallet.transfer("P1", "P2", "2.00", reference="slow")
    assert wallet.transfer("P1", "P2", "1.00", reference="next").balance.available.format() == "96.00"
    assert _entries(pg_db)["transfer:slow"] == again.entry_id and check_ledger(pg_db).clean


def test_a_driver_error_of_the_replays_balance_read_is_mapped(db):
    """On a replay the balance is read after the posting: its errors are ``DBAPIError`` as well."""
    wallet = _funded(db)
    wallet.transfer("P1", "P2", "1.00", reference="t1")
    with db.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE accounts RENAME COLUMN kind TO kind_elsewhere")
    try:
        with pytest.raises(DBAPIError, match="kind") as raised:
            wallet.transfer("P1", "P2", "1.00", reference="t1")
    finally:
        with db.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE accounts RENAME COLUMN kind_elsewhere TO kind")
    assert "kind" in str(raised.value.orig)
    assert wallet.transfer("P1", "P2", "1.00", reference="t1").replayed is True


def test_a_driver_error_of_a_posting_statement_is_mapped_and_not_retried(db):
    """A trigger refuses the entry: the driver's error arrives as SQLAlchemy's, once."""
    wallet = _funded(db)
    with db.engine.begin() as connection:
        if db.dialect == "sqlite":
            connection.exec_driver_sql("CREATE TRIGGER entries_refused BEFORE INSERT ON entries "
                                       "WHEN NEW.idempotency_key = 'transfer:refused' "
                                       "BEGIN SELECT RAISE(ABORT, 'entry refused by trigger'); END")
        else:
            connection.exec_driver_sql("""
                CREATE FUNCTION tw_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.idempotency_key = 'transfer:refused' THEN RAISE EXCEPTION 'entry refused by trigger'; END IF;
                    RETURN NEW;
                END $$""")
            connection.exec_driver_sql("CREATE TRIGGER entries_refused BEFORE INSERT ON entries "
                                       "FOR EACH ROW EXECUTE FUNCTION tw_test_refuse()")
    try:
        with pytest.raises(DBAPIError, match="entry refused by trigger") as raised:
            wallet.transfer("P1", "P2", "1.00", reference="refused")
    finally:
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER entries_refused" + ("" if db.dialect == "sqlite" else " ON entries"))
            if db.dialect == "postgresql":
                connection.exec_driver_sql("DROP FUNCTION tw_test_refuse()")
    driver_error = sqlite3.Error if db.dialect == "sqlite" else psycopg.Error
    assert isinstance(raised.value.orig, driver_error) and not raised.value.connection_invalidated
    assert "transfer:refused" not in _entries(db)
    assert wallet.transfer("P1", "P2", "1.00", reference="refused").balance.available.format() == "99.00"


class _Unbindable:
    """A memo the driver cannot bind: SQLite asks ``__conform__``, whose own exception passes through."""

    def __conform__(self, _protocol: object) -> NoReturn:
        raise _NotTheDatabases("refused to bind")


class _NotTheDatabases(Exception):
    pass



def test_a_non_driver_exception_of_a_posting_statement_passes_through_unchanged(sqlite_db):
    wallet = _funded(sqlite_db)
    _, payer, _ = ledger.cached_player_accounts(sqlite_db, "P1")
    _, payee, _ = ledger.cached_player_accounts(sqlite_db, "P2")
    legs = [ledger.Leg(payer, -100), ledger.Leg(payee, 100)]
    calls = []

    def work(cursor: Any) -> ledger.Posted:
        calls.append(1)
        return ledger.post(cursor, kind="transfer", idempotency_key="odd-memo", legs=legs, memo=_Unbindable())  # type: ignore[arg-type]

    with pytest.raises(_NotTheDatabases, match="refused to bind"):
        sqlite_db.on_driver(work)
    assert calls == [1]  # not the database's error: not retried
    assert "odd-memo" not in _entries(sqlite_db) and wallet.balance("P1").available.format() == "100.00"
