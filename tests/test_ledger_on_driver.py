"""A wallet transfer on the driver's own connection (``Database.on_driver``), on both databases.

The transfer skips SQLAlchemy's ``Connection`` (autocommit on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite, on a pooled driver connection). These stories check that it keeps
every rule of the ordinary unit of work: replay, conflict, refusal, retry of a transient
error, a connection handed back clean after an error, a broken one thrown away.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

import transfer_wallet.db as db_module
from transfer_wallet import migrations
from transfer_wallet.db import Database
from transfer_wallet.errors import ConcurrencyError, IdempotencyConflictError, InsufficientFundsError, NotFoundError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.wallet import Wallet


def _funded(db: Database) -> Wallet:
    wallet = Wallet(db)
    for player, amount in (("P1", "10.00"), ("P2", "0.00")):
        wallet.create_player(player, "EUR")
        if amount != "0.00":
            wallet.deposit(player, amount, reference=f"seed-{player}")
    return wallet


def _transfer_count(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text("SELECT COUNT(*) FROM entries WHERE kind = 'transfer'")).scalar_one())


def test_a_transfer_posts_replays_refuses_a_conflict_and_an_overdraft(db):
    wallet = _funded(db)
    first = wallet.transfer("P1", "P2", "2.50", reference="t1")
    assert (first.replayed, first.available_after.format(), first.balance.available.format()) == (False, "7.50", "7.50")
    wallet.transfer("P1", "P2", "1.00", reference="t2")
    replay = wallet.transfer("P1", "P2", "2.50", reference="t1")
    # the replay answers as the first time, and reads the balance as it is now
    assert (replay.replayed, replay.entry_id, replay.available_after.format()) == (True, first.entry_id, "7.50")
    assert replay.balance.available.format() == "6.50"
    with pytest.raises(IdempotencyConflictError, match="'transfer:t1' was already used"):
        wallet.transfer("P1", "P2", "2.51", reference="t1")
    with pytest.raises(InsufficientFundsError, match="6.50 EUR available, 6.51 EUR needed"):
        wallet.transfer("P1", "P2", "6.51", reference="t3")
    with pytest.raises(NotFoundError, match="unknown player 'nobody'"):
        wallet.transfer("P1", "nobody", "1.00", reference="t4")
    assert (wallet.balance("P1").available.format(), wallet.balance("P2").available.format()) == ("6.50", "3.50")
    assert _transfer_count(db) == 2
    assert check_ledger(db).clean


def test_after_a_refused_transfer_the_same_connection_serves_a_transaction_that_rolls_back(db):
    """The driver connection goes back to the pool out of autocommit and with nothing open."""
    wallet = _funded(db)
    with pytest.raises(InsufficientFundsError):
        wallet.transfer("P1", "P2", "99.00", reference="too-much")
    with pytest.raises(IdempotencyConflictError):
        _conflict(wallet)

    def write_then_fail(connection):  # type: ignore[no-untyped-def]
        connection.execute(text("INSERT INTO players (id, currency, created_at) VALUES ('ghost', 'EUR', '2026-01-01')"))
        raise RuntimeError("the unit of work fails after writing")

    with pytest.raises(RuntimeError):
        db.transaction(write_then_fail)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM players WHERE id = 'ghost'")).scalar_one() == 0
    assert wallet.transfer("P1", "P2", "1.00", reference="after").balance.available.format() == "8.00"
    assert db.engine.pool.checkedin() == 1  # type: ignore[attr-defined]  # one connection served all of it
    assert check_ledger(db).clean


def _conflict(wallet: Wallet) -> None:
    wallet.transfer("P1", "P2", "1.00", reference="c1")
    wallet.transfer("P1", "P2", "1.01", reference="c1")


@pytest.mark.postgres
@pytest.mark.parametrize("condition", ["serialization_failure", "deadlock_detected"])  # 40001, 40P01
def test_a_serialization_failure_or_deadlock_is_retried_on_the_same_clean_connection(pg_db, condition):
    """A real SQLSTATE 40001 or 40P01 from the server (a trigger that fails the first insert of one key) is retried."""
    wallet = _funded(pg_db)
    with pg_db.engine.begin() as connection:
        connection.exec_driver_sql("CREATE SEQUENCE tw_test_flaky_attempts")
        connection.exec_driver_sql(f"""
            CREATE FUNCTION tw_test_flaky_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.idempotency_key = 'transfer:flaky' AND nextval('tw_test_flaky_attempts') = 1 THEN
                    RAISE EXCEPTION 'first attempt loses' USING ERRCODE = '{condition}';
                END IF;
                RETURN NEW;
            END $$""")
        connection.exec_driver_sql("CREATE TRIGGER entries_flaky BEFORE INSERT ON entries "
                                   "FOR EACH ROW EXECUTE FUNCTION tw_test_flaky_once()")
    try:
        result = wallet.transfer("P1", "P2", "4.00", reference="flaky")
        with pg_db.engine.connect() as connection:
            attempts = connection.exec_driver_sql("SELECT last_value FROM tw_test_flaky_attempts").scalar_one()
    finally:
        with pg_db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER entries_flaky ON entries")
            connection.exec_driver_sql("DROP FUNCTION tw_test_flaky_once()")
            connection.exec_driver_sql("DROP SEQUENCE tw_test_flaky_attempts")
    assert attempts == 2  # refused once, posted on the second attempt
    assert (result.replayed, result.balance.available.format()) == (False, "6.00")
    assert _transfer_count(pg_db) == 1 and check_ledger(pg_db).clean


@pytest.mark.postgres
def test_a_connection_killed_under_the_pool_is_replaced_and_the_transfer_runs_on_a_new_one(pg_db):
    wallet = _funded(pg_db)
    wallet.transfer("P1", "P2", "1.00", reference="before")  # the pool now holds one idle connection
    outside = pg_db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(outside, autocommit=True) as killer:
        killed = killer.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert killed == (1,)
    # the statement failed on the dead connection before it ran; the unit ran again on a new one
    assert wallet.transfer("P1", "P2", "1.00", reference="on-the-dead-connection").replayed is False
    assert wallet.transfer("P1", "P2", "1.00", reference="on-the-dead-connection").replayed is True
    assert wallet.balance("P1").available.format() == "8.00"
    assert _transfer_count(pg_db) == 2 and check_ledger(pg_db).clean


@pytest.mark.postgres
def test_a_posting_statement_the_server_lost_is_prepared_again_and_the_transfer_runs_once(pg_db):
    """The posting call is prepared once per connection; a rollback of psycopg's (or anyone's
    ``DEALLOCATE ALL``) drops it: the next transfer prepares it again, and moves the money once."""
    wallet = _funded(pg_db)
    wallet.transfer("P1", "P2", "1.00", reference="prepared")  # the pool now holds one connection, prepared
    pooled = pg_db.engine.raw_connection()
    try:
        prepared = "SELECT count(*) FROM pg_prepared_statements WHERE name = 'tw_post_entry_call'"
        assert pooled.driver_connection.execute(prepared).fetchone() == (1,)  # type: ignore[union-attr]
        pooled.driver_connection.execute("DEALLOCATE ALL")  # type: ignore[union-attr]
        assert pooled.driver_connection.execute(prepared).fetchone() == (0,)  # type: ignore[union-attr]
    finally:
        pooled.close()
    assert wallet.transfer("P1", "P2", "1.00", reference="after-deallocate").balance.available.format() == "8.00"
    assert wallet.transfer("P1", "P2", "1.00", reference="after-deallocate").replayed is True
    pooled = pg_db.engine.raw_connection()
    try:
        assert pooled.driver_connection.execute(prepared).fetchone() == (1,)  # type: ignore[union-attr]
    finally:
        pooled.close()
    assert _transfer_count(pg_db) == 2 and check_ledger(pg_db).clean


@pytest.mark.postgres
def test_a_memo_with_a_nul_goes_the_cursors_way_and_is_refused_as_psycopg_refuses_it(pg_db):
    """libpq would cut a text parameter at a NUL: such a posting is left to psycopg, which refuses it."""
    from sqlalchemy.exc import DBAPIError

    from transfer_wallet import ledger

    wallet = _funded(pg_db)
    main = pg_db.transaction(lambda c: ledger.player_accounts(pg_db, c, "P1"))[1]
    payee = pg_db.transaction(lambda c: ledger.player_accounts(pg_db, c, "P2"))[1]
    legs = [ledger.Leg(main, -100), ledger.Leg(payee, 100)]
    with pytest.raises(DBAPIError, match="NUL"):
        pg_db.on_driver(lambda cursor: ledger.post(cursor, kind="transfer", idempotency_key="nul", legs=legs, memo="a\x00b"))
    posted = pg_db.on_driver(lambda cursor: ledger.post(cursor, kind="transfer", idempotency_key="memo", legs=legs, memo="ab"))
    assert posted.balances_after == {main.id: 900, payee.id: 100}
    assert wallet.balance("P1").available.format() == "9.00" and check_ledger(pg_db).clean


def test_a_busy_sqlite_is_retried_until_the_other_writer_commits_then_a_concurrency_error(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 50)  # give up waiting for the lock quickly
    path = tmp_path / "busy.db"
    database = db_module.open_database(f"sqlite:///{path}")
    migrations.upgrade(database)
    wallet = _funded(database)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock for 0.3 s
        threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
        assert wallet.transfer("P1", "P2", "1.00", reference="waits").balance.available.format() == "9.00"
        holder.execute("BEGIN IMMEDIATE")  # and now for good
        with pytest.raises(ConcurrencyError, match="after 8 attempts"):
            wallet.transfer("P1", "P2", "1.00", reference="gives-up")
        holder.execute("COMMIT")
        assert wallet.balance("P1").available.format() == "9.00" and _transfer_count(database) == 1
        assert wallet.transfer("P1", "P2", "1.00", reference="again").balance.available.format() == "8.00"
    finally:
        holder.close()
        database.dispose()


@pytest.mark.postgres
def test_a_prepare_the_server_finished_but_the_client_never_noted_is_taken_as_done(pg_db):
    """A signal between the server's PREPARE and the client noting it (psycopg cancels, the prepare
    completes): the next transfer on that connection finds the statement there, and moves the money."""
    wallet = _funded(pg_db)
    wallet.transfer("P1", "P2", "1.00", reference="prepared")
    pooled = pg_db.engine.raw_connection()
    try:
        pooled.driver_connection._tw_post_prepared = None  # type: ignore[union-attr]  # as the interrupt leaves it
    finally:
        pooled.close()
    for n in range(3):
        assert wallet.transfer("P1", "P2", "1.00", reference=f"after-{n}").balance.available.format() == f"{8 - n}.00"
    assert _transfer_count(pg_db) == 4 and check_ledger(pg_db).clean


@pytest.mark.postgres
def test_a_call_larger_than_libpqs_buffer_is_sent_whole_and_answered(pg_db):
    """A posting whose parameters libpq cannot send at once (a 20 MB memo) is flushed before the answer
    is read: the server's refusal (the memo column holds 500) comes back, nothing hangs, nothing posts."""
    import signal

    from sqlalchemy.exc import DBAPIError

    from transfer_wallet import ledger

    _funded(pg_db)
    main = pg_db.transaction(lambda c: ledger.player_accounts(pg_db, c, "P1"))[1]
    payee = pg_db.transaction(lambda c: ledger.player_accounts(pg_db, c, "P2"))[1]
    legs = [ledger.Leg(main, -100), ledger.Leg(payee, 100)]

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("the posting call hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        with pytest.raises(DBAPIError, match="too long"):
            pg_db.on_driver(lambda cursor: ledger.post(cursor, kind="transfer", idempotency_key="big",
                                                       legs=legs, memo="m" * 20_000_000))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert _transfer_count(pg_db) == 0 and check_ledger(pg_db).clean
