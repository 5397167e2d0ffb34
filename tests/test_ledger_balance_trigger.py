"""PostgreSQL refuses to commit an entry whose postings do not balance, however they were written.

The check runs once per INSERT statement on postings (migration 0009): an entry the
statement balances by itself costs nothing more; any other entry is checked against
all its postings at commit. These raw writes bypass the ledger (no ``tw_post_entry``):
each shape is refused *at commit* (its statements all succeed), and a shape that
balances when the transaction commits is accepted, as under the row trigger before.
SQLite has no deferred triggers: there the ledger checks an entry before writing it
(``ledger.validate_legs``, run on both databases by ``tests/test_ledger.py``).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from transfer_wallet.db import Database
from transfer_wallet.ledger import check_ledger
from transfer_wallet.wallet import Wallet

pytestmark = pytest.mark.postgres

#: A raw posting: (entry letter, currency, amount_minor); a shape is its statements, each a list of postings.
Posting = tuple[str, str, int]
Shape = list[list[Posting]]


def _ledger(db: Database) -> dict[str, int]:
    """A funded player (the seed entry); by currency, the uncached account the raw postings use."""
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "10.00", reference="seed")
    with db.engine.begin() as connection:
        connection.execute(text("INSERT INTO accounts (code, kind, currency, cached, balance_minor, created_at) "
                                "VALUES ('cashier:USD', 'cashier', 'USD', false, 0, now())"))
        rows = connection.execute(text("SELECT currency, id FROM accounts WHERE kind = 'cashier'")).all()
    return {currency: account_id for currency, account_id in rows}


def _entry(connection: Any, key: str) -> int:
    return int(connection.execute(text(
        "INSERT INTO entries (kind, idempotency_key, request_hash, created_at) "
        "VALUES ('forged', :k, 'h', now()) RETURNING id"), {"k": key}).scalar_one())


def _insert(connection: Any, entries: dict[str, int], accounts: dict[str, int], postings: list[Posting]) -> None:
    """One INSERT statement writing ``postings`` (all of them, whatever entries they belong to)."""
    values = ", ".join(f"(:e{n}, :a{n}, :c{n}, :m{n})" for n in range(len(postings)))
    params: dict[str, Any] = {}
    for n, (letter, currency, amount) in enumerate(postings):
        params.update({f"e{n}": entries[letter], f"a{n}": accounts[currency], f"c{n}": currency, f"m{n}": amount})
    connection.execute(text(f"INSERT INTO postings (entry_id, account_id, currency, amount_minor) VALUES {values}"), params)


def _write(db: Database, shape: Shape, accounts: dict[str, int]) -> None:
    """Entries A, B ... and the shape's statements in one transaction; every statement must succeed,
    then the commit (where a refusal shows) runs."""
    with db.engine.connect() as connection:
        transaction = connection.begin()
        entries = {letter: _entry(connection, f"raw-{letter}-{uuid.uuid4().hex}") for letter in sorted({p[0] for s in shape for p in s})}
        for statement in shape:
            _insert(connection, entries, accounts, statement)
        transaction.commit()


REFUSED: dict[str, Shape] = {
    "a credit alone": [[("A", "EUR", 100)]],
    "a debit alone (the credit row omitted)": [[("A", "EUR", -100)]],
    "two debits, no credit": [[("A", "EUR", -100), ("A", "EUR", -50)]],
    "balanced in EUR, USD left over": [[("A", "EUR", 100), ("A", "EUR", -100), ("A", "USD", 5)]],
    "a balanced sum across two currencies": [[("A", "EUR", 100), ("A", "USD", -100)]],
    "two statements that do not add up": [[("A", "EUR", -100)], [("A", "EUR", 90)]],
    "three statements, the last unbalancing": [[("A", "EUR", -100)], [("A", "EUR", 100)], [("A", "EUR", 1)]],
    "one statement, two entries, one of them off": [[("A", "EUR", 5), ("A", "EUR", -5), ("B", "EUR", 7)]],
    "two entries whose errors cancel in the statement": [[("A", "EUR", 5), ("B", "EUR", -5)]],
    "an entry balanced, then a second one left open": [[("A", "EUR", 5), ("A", "EUR", -5)], [("B", "EUR", -3)]],
}

ACCEPTED: dict[str, Shape] = {
    "one statement": [[("A", "EUR", -100), ("A", "EUR", 100)]],
    "debit and credit in two statements": [[("A", "EUR", -100)], [("A", "EUR", 100)]],
    "credit first, in three statements": [[("A", "EUR", 60)], [("A", "EUR", 40)], [("A", "EUR", -100)]],
    "two entries in one statement": [[("A", "EUR", 5), ("A", "EUR", -5), ("B", "USD", 7), ("B", "USD", -7)]],
    "two entries interleaved over two statements": [[("A", "EUR", 5), ("B", "EUR", -5)], [("B", "EUR", 5), ("A", "EUR", -5)]],
}


def _entries_to_check(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM tw_checks.entries_to_check")).scalar_one())


@pytest.mark.parametrize("shape", REFUSED.values(), ids=REFUSED.keys())
def test_an_unbalanced_raw_write_is_refused_at_commit(pg_db, shape: Shape) -> None:
    accounts = _ledger(pg_db)
    with pytest.raises(DBAPIError, match="does not balance"):
        _write(pg_db, shape, accounts)
    report = check_ledger(pg_db)
    assert report.clean and report.entries == 1, report.findings  # only the seed deposit
    assert _entries_to_check(pg_db) == 0


@pytest.mark.parametrize("shape", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_raw_write_that_balances_at_commit_is_accepted(pg_db, shape: Shape) -> None:
    accounts = _ledger(pg_db)
    _write(pg_db, shape, accounts)
    report = check_ledger(pg_db)
    assert report.clean and report.postings == 2 + sum(len(statement) for statement in shape), report.findings
    assert _entries_to_check(pg_db) == 0  # the entries checked at commit are not kept


def test_a_posting_appended_to_a_committed_entry_is_refused_and_a_balanced_pair_is_not(pg_db) -> None:
    accounts = _ledger(pg_db)
    with pg_db.engine.connect() as connection:
        seed = connection.execute(text("SELECT id FROM entries")).scalar_one()
    for postings, refused in (([("S", "EUR", 1)], True), ([("S", "EUR", -1)], True),
                              ([("S", "EUR", 1), ("S", "EUR", -1)], False)):
        with pg_db.engine.connect() as connection:
            transaction = connection.begin()
            _insert(connection, {"S": seed}, accounts, postings)
            if refused:
                with pytest.raises(DBAPIError, match=f"entry {seed} does not balance"):
                    transaction.commit()
            else:
                transaction.commit()
    assert check_ledger(pg_db).clean


def test_immediate_constraints_refuse_the_statement_and_a_savepoint_takes_its_check_back(pg_db) -> None:
    accounts = _ledger(pg_db)
    with pg_db.engine.connect() as connection:
        with connection.begin():
            entries = {"A": _entry(connection, "raw-A")}
            connection.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
            with pytest.raises(DBAPIError, match="does not balance"):
                with connection.begin_nested():
                    _insert(connection, entries, accounts, [("A", "EUR", 100)])
            with connection.begin_nested() as savepoint:  # deferred again: an unbalanced leg, then taken back
                connection.execute(text("SET CONSTRAINTS ALL DEFERRED"))
                _insert(connection, entries, accounts, [("A", "EUR", 100)])
                savepoint.rollback()
            _insert(connection, entries, accounts, [("A", "EUR", -100), ("A", "EUR", 100)])
    report = check_ledger(pg_db)
    assert report.clean and report.postings == 4, report.findings


def test_copy_of_an_unbalanced_leg_is_refused_at_commit(pg_db) -> None:
    accounts = _ledger(pg_db)
    pooled = pg_db.engine.raw_connection()
    try:
        cursor = pooled.cursor()
        cursor.execute("INSERT INTO entries (kind, idempotency_key, request_hash, created_at) "
                       "VALUES ('forged', 'copied', 'h', now()) RETURNING id")
        entry_id = cursor.fetchone()[0]
        with cursor.connection.cursor().copy(
                "COPY postings (entry_id, account_id, currency, amount_minor) FROM STDIN") as copy:
            copy.write_row((entry_id, accounts["EUR"], "EUR", 100))
        with pytest.raises(Exception, match="does not balance"):
            pooled.commit()
    finally:
        pooled.close()
    assert check_ledger(pg_db).entries == 1


_LEGS = st.lists(st.tuples(st.sampled_from("AB"), st.sampled_from(["EUR", "USD"]), st.sampled_from([-7, -5, -2, 2, 5, 7])),
                 min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(postings=_LEGS, cuts=st.lists(st.integers(0, 6), max_size=3))
def test_any_split_of_any_postings_commits_exactly_when_every_entry_balances(pg_db, postings, cuts) -> None:
    with pg_db.engine.connect() as connection:  # the examples share one database: the ledger is made once
        rows = connection.execute(text("SELECT currency, id FROM accounts WHERE kind = 'cashier'")).all()
    accounts = {currency: account_id for currency, account_id in rows} or _ledger(pg_db)
    before = check_ledger(pg_db).postings
    bounds = sorted({0, len(postings), *(c for c in cuts if c < len(postings))})
    shape = [postings[a:b] for a, b in zip(bounds, bounds[1:])]
    totals: dict[tuple[str, str], int] = {}
    for letter, currency, amount in postings:
        totals[letter, currency] = totals.get((letter, currency), 0) + amount
    balanced = not any(totals.values())
    if balanced:
        _write(pg_db, shape, accounts)
    else:
        with pytest.raises(DBAPIError, match="does not balance"):
            _write(pg_db, shape, accounts)
    report = check_ledger(pg_db)
    assert report.clean and report.postings == before + (len(postings) if balanced else 0), report.findings


@pytest.mark.parametrize("shadow", [
    "CREATE TEMP TABLE postings (entry_id bigint, currency varchar, amount_minor bigint) ON COMMIT DROP",
    "CREATE SCHEMA IF NOT EXISTS shadow; "
    "CREATE TABLE IF NOT EXISTS shadow.postings (entry_id bigint, currency varchar, amount_minor bigint); "
    "SET LOCAL search_path = shadow, public",
], ids=["a temporary table", "a schema first on the search path"])
def test_a_table_named_postings_elsewhere_does_not_stand_in_at_commit(pg_db, shadow: str) -> None:
    """The commit-time check reads the ledger's own postings (qualified, with a fixed search path)."""
    accounts = _ledger(pg_db)
    with pg_db.engine.connect() as connection:
        transaction = connection.begin()
        entry = _entry(connection, "raw-shadowed")
        connection.exec_driver_sql(shadow)
        connection.execute(text("INSERT INTO public.postings (entry_id, account_id, currency, amount_minor) "
                                "VALUES (:e, :a, 'EUR', 100)"), {"e": entry, "a": accounts["EUR"]})
        with pytest.raises(DBAPIError, match=f"entry {entry} does not balance"):
            transaction.commit()
    report = check_ledger(pg_db)
    assert report.clean and report.entries == 1, report.findings


def test_a_role_with_only_the_ledger_grants_is_checked_like_the_owner(pg_db) -> None:
    """The queue belongs to the owner: a role granted the ledger's tables writes a balanced entry over
    two statements, and its unbalanced entry is refused at commit (not a permission error)."""
    accounts = _ledger(pg_db)
    role = f"tw_app_{uuid.uuid4().hex[:8]}"
    with pg_db.engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role}")
        connection.exec_driver_sql(f"GRANT SELECT, INSERT ON entries, postings TO {role}")
        connection.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    try:
        for shape, refused in (([[("A", "EUR", -100)], [("A", "EUR", 100)]], False), ([[("A", "EUR", 100)]], True)):
            with pg_db.engine.connect() as connection:
                transaction = connection.begin()
                connection.exec_driver_sql(f"SET LOCAL ROLE {role}")
                entries = {"A": _entry(connection, f"raw-role-{uuid.uuid4().hex}")}
                for statement in shape:
                    _insert(connection, entries, accounts, statement)
                if refused:
                    with pytest.raises(DBAPIError, match="does not balance"):
                        transaction.commit()
                else:
                    transaction.commit()
        report = check_ledger(pg_db)
        assert report.clean and report.entries == 2, report.findings
        assert _entries_to_check(pg_db) == 0
    finally:
        with pg_db.engine.begin() as connection:
            connection.exec_driver_sql(f"DROP OWNED BY {role}")
            connection.exec_driver_sql(f"DROP ROLE {role}")
