"""The ledger as worked accounting stories, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from transfer_wallet import fx, ledger
from transfer_wallet.errors import IdempotencyConflictError, InsufficientFundsError, NotFoundError, ValidationError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import CASHIER
from transfer_wallet.money import Money
from transfer_wallet.wallet import Wallet


def count(db, table: str) -> int:
    with db.engine.connect() as connection:
        return connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_a_deposit_and_a_withdrawal_leave_the_player_with_the_difference(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "20.00", reference="dep-1")
    result = wallet.withdraw("P1", "13.50", reference="wd-1")
    assert result.balance.as_dict() == {
        "player_id": "P1", "currency": "EUR", "available": "6.50", "locked": "0.00", "total": "6.50",
    }
    report = check_ledger(db)
    assert report.clean, report.findings
    assert report.totals == {"EUR": 0}
    assert (report.entries, report.postings) == (2, 4)


def test_the_cashier_account_mirrors_what_players_hold(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.create_player("P2", "EUR")
    wallet.deposit("P1", "10.00", reference="d1")
    wallet.deposit("P2", "2.55", reference="d2")
    with db.engine.connect() as connection:
        cashier = ledger.account_by_code(connection, "cashier:EUR")
        assert ledger.derived_balance(connection, cashier.id) == -1255


def test_repeating_a_reference_replays_the_first_result_and_moves_nothing(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    first = wallet.deposit("P1", "20.00", reference="dep-1")
    wallet.withdraw("P1", "5.00", reference="wd-1")
    again = wallet.deposit("P1", "20.00", reference="dep-1")
    assert again.replayed and not first.replayed
    assert again.entry_id == first.entry_id
    assert again.available_after == first.available_after == Money(2000, first.balance.currency)
    assert again.balance.available.format() == "15.00"
    assert count(db, "entries") == 2


def test_a_reference_reused_for_another_amount_is_a_conflict_and_writes_nothing(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "20.00", reference="dep-1")
    with pytest.raises(IdempotencyConflictError, match="dep-1"):
        wallet.deposit("P1", "21.00", reference="dep-1")
    with pytest.raises(IdempotencyConflictError):
        wallet.withdraw("P1", "20.00", reference="dep-1")
    assert wallet.balance("P1").available.format() == "20.00"
    assert count(db, "entries") == 1


def test_a_withdrawal_above_the_available_balance_is_refused_and_writes_nothing(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "6.50", reference="d1")
    with pytest.raises(InsufficientFundsError, match="6.50 EUR available, 6.51 EUR needed"):
        wallet.withdraw("P1", "6.51", reference="w1")
    assert wallet.balance("P1").available.format() == "6.50"
    assert count(db, "entries") == 1
    # the refused reference is free for a correct retry
    assert wallet.withdraw("P1", "6.50", reference="w1").balance.available.format() == "0.00"


def test_a_transfer_between_players_never_overdraws_the_payer(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.create_player("P2", "EUR")
    wallet.deposit("P1", "50.00", reference="d1")
    assert wallet.transfer("P1", "P2", "30.00", reference="t1").balance.available.format() == "20.00"
    with pytest.raises(InsufficientFundsError):
        wallet.transfer("P1", "P2", "20.01", reference="t2")
    assert wallet.balance("P2").available.format() == "30.00"
    assert check_ledger(db).clean


def test_creating_a_player_twice_is_safe_but_not_with_another_currency(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "1.00", reference="d1")
    assert wallet.create_player("P1", "eur").available.format() == "1.00"
    with pytest.raises(IdempotencyConflictError, match="EUR"):
        wallet.create_player("P1", "USD")


def test_amounts_must_be_in_the_players_currency(db):
    wallet = Wallet(db)
    wallet.create_player("J1", "JPY")
    with pytest.raises(ValidationError, match="1 decimals but JPY allows 0|JPY"):
        wallet.deposit("J1", "1.5", reference="d1")
    with pytest.raises(ValidationError, match="in EUR but player 'J1' holds JPY"):
        wallet.deposit("J1", Money.parse("1.00", "EUR"), reference="d2")
    assert wallet.deposit("J1", "1500", reference="d3").balance.available.format() == "1500"


def test_unknown_players_are_named(db):
    with pytest.raises(NotFoundError, match="unknown player 'nobody'"):
        Wallet(db).deposit("nobody", "1.00")


def test_entries_and_postings_are_append_only(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "1.00", reference="d1")
    for statement in ("UPDATE postings SET amount_minor = 999", "DELETE FROM postings", "DELETE FROM entries",
                      "UPDATE entries SET kind = 'forged'"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.engine.begin() as connection:
                connection.execute(text(statement))
    assert check_ledger(db).clean


def test_the_database_refuses_a_negative_player_balance(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    with pytest.raises(DBAPIError, match="balance_floor|CHECK"):
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE accounts SET balance_minor = -1 WHERE code = 'player:P1:main'"))


def test_the_ledger_check_finds_a_cached_balance_that_drifted(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "5.00", reference="d1")
    with db.engine.begin() as connection:  # simulate a bug that bypassed the ledger
        connection.execute(text("UPDATE accounts SET balance_minor = 700 WHERE code = 'player:P1:main'"))
    report = check_ledger(db)
    assert not report.clean
    assert [f.check for f in report.findings] == ["cached_balance"]
    assert "player:P1:main caches 7.00 EUR but its postings sum to 5.00 EUR" in report.findings[0].detail


@pytest.mark.postgres
def test_postgres_refuses_to_commit_an_unbalanced_entry(pg_db):
    wallet = Wallet(pg_db)
    wallet.create_player("P1", "EUR")
    with pytest.raises(DBAPIError, match="does not balance"):
        with pg_db.engine.begin() as connection:
            entry_id = connection.execute(text(
                "INSERT INTO entries (kind, idempotency_key, request_hash, created_at) "
                "VALUES ('forged', 'k', 'h', now()) RETURNING id")).scalar_one()
            account_id = connection.execute(text("SELECT id FROM accounts WHERE code = 'player:P1:main'")).scalar_one()
            connection.execute(text(
                "INSERT INTO postings (entry_id, account_id, currency, amount_minor) VALUES (:e, :a, 'EUR', 100)"),
                {"e": entry_id, "a": account_id})
    assert check_ledger(pg_db).clean


def test_an_fx_conversion_at_the_stored_rate_credits_the_floor_and_keeps_the_residue(db):
    fx.set_rate(db, "JPY", "EUR", "0.0062")

    conversion, rate = db.transaction(lambda connection: fx.convert_at(connection, Money.parse("1001", "JPY"), "EUR"))

    # 1001 JPY * 0.0062 = 6.2062 EUR -> 6.20 EUR credited (operator's favour);
    # 6.20 EUR needs ceil(6.20 / 0.0062) = 1000 JPY; the 1 JPY left bought nothing.
    assert rate.rate == Decimal("0.0062")
    assert conversion.target.format() == "6.20"
    assert (conversion.consumed.format(), conversion.residue.format()) == ("1000", "1")
    assert conversion.exact_target == Decimal("6.2062")


def test_an_account_created_in_a_rolled_back_transaction_is_not_remembered(db):
    # The first EUR withdrawal fails, rolling back the cashier account it created. Nothing may
    # keep that id: SQLite hands it to the next account, and postings would land on a player.
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    with pytest.raises(InsufficientFundsError):
        wallet.withdraw("P1", "1.00", reference="w1")
    assert db.account_ids == {}
    wallet.create_player("P2", "EUR")
    wallet.deposit("P2", "10.00", reference="d1")
    assert check_ledger(db).clean
    assert wallet.balance("P2").locked.format() == "0.00"
