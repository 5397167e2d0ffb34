"""``tw ledger check`` finds what the database constraints should have made impossible.

To make a corrupted database the tests switch a CHECK constraint off for one write
(SQLite: ``PRAGMA ignore_check_constraints``; PostgreSQL: drop the constraint and add
it back ``NOT VALID`` afterwards), on a real database, then run the check.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import text

from transfer_wallet.ledger import check_ledger
from transfer_wallet.wallet import Wallet


@contextmanager
def without_check(db, constraint: str) -> Iterator[None]:
    """Run the body's writes with the accounts table's ``constraint`` switched off."""
    if db.engine.dialect.name == "sqlite":
        yield
        return
    with db.engine.begin() as connection:
        definition = connection.execute(text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :name"
        ), {"name": constraint}).scalar_one()
        connection.execute(text(f'ALTER TABLE accounts DROP CONSTRAINT "{constraint}"'))
    try:
        yield
    finally:
        with db.engine.begin() as connection:  # back for the next test (which truncates the rows first)
            connection.execute(text(f'ALTER TABLE accounts ADD CONSTRAINT "{constraint}" {definition} NOT VALID'))


def corrupt(db, statement: str, constraint: str) -> None:
    """Execute ``statement`` although ``constraint`` forbids what it writes."""
    with without_check(db, constraint), db.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        connection.execute(text(statement))
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")


def findings(db) -> list[tuple[str, str]]:
    return [(f.check, f.detail) for f in check_ledger(db).findings]


def constraint_name(db, suffix: str) -> str:
    with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            return suffix
        return connection.execute(text(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'accounts'::regclass AND conname LIKE :pattern"
        ), {"pattern": f"%{suffix}"}).scalar_one()


def test_a_negative_cached_player_balance_is_a_balance_floor_finding(db):
    Wallet(db).create_player("P1", "EUR")
    assert check_ledger(db).clean
    corrupt(db, "UPDATE accounts SET balance_minor = -500 WHERE code = 'player:P1:main'", constraint_name(db, "balance_floor"))

    found = findings(db)

    assert found == [
        ("cached_balance", "player:P1:main caches -5.00 EUR but its postings sum to 0.00 EUR"),
        ("balance_floor", "player:P1:main is negative (-5.00 EUR)"),
    ]


def test_a_cached_amount_on_an_uncached_account_is_an_uncached_zero_finding(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "25.00", reference="dep-1")  # creates the uncached cashier:EUR account
    assert check_ledger(db).clean
    corrupt(db, "UPDATE accounts SET balance_minor = 700 WHERE code = 'cashier:EUR'", constraint_name(db, "uncached_zero"))

    assert findings(db) == [("uncached_zero", "cashier:EUR has a cached balance 7.00 EUR")]
