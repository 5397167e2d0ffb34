"""Worked examples for the cashier, ledger and FX branches that refuse money, on both databases.

P1 and P2 hold EUR, Y1 holds JPY; a refused movement leaves every balance as it was and
writes no journal entry.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from tests.money_branches_support import interleave
from transfer_wallet import fx, ledger
from transfer_wallet.errors import IdempotencyConflictError, ValidationError
from transfer_wallet.models import Entry
from transfer_wallet.money import Money
from transfer_wallet.wallet import Wallet

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
_entries = Entry.__table__  # type: ignore[attr-defined]


@pytest.fixture
def wallet(db):
    wallet = Wallet(db)
    for player, ccy, amount in (("P1", "EUR", "100.00"), ("P2", "EUR", "10.00"), ("Y1", "JPY", "5000")):
        wallet.create_player(player, ccy)
        wallet.deposit(player, amount, reference=f"dep-{player}")
    return wallet


def entry_count(db) -> int:
    with db.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(_entries)).scalar_one()


def available(wallet: Wallet, player_id: str) -> str:
    return wallet.balance(player_id).available.format()


def test_a_transfer_to_oneself_is_refused(db, wallet):
    with pytest.raises(ValidationError, match="two different players"):
        wallet.transfer("P1", "P1", "5.00", reference="t-self")
    assert available(wallet, "P1") == "100.00" and entry_count(db) == 3


def test_a_transfer_between_currencies_is_refused(db, wallet):
    with pytest.raises(ValidationError, match=r"currencies differ \(EUR vs JPY\)"):
        wallet.transfer("P1", "Y1", "5.00", reference="t-fx")
    assert (available(wallet, "P1"), available(wallet, "Y1")) == ("100.00", "5000") and entry_count(db) == 3


@pytest.mark.parametrize("amount_minor", [0, -500])
def test_a_deposit_or_transfer_of_zero_or_negative_money_is_refused(db, wallet, amount_minor):
    eur = Money.parse("1", "EUR").currency
    with pytest.raises(ValidationError, match="amount must be positive"):
        wallet.deposit("P1", Money(amount_minor, eur), reference="d-bad")
    with pytest.raises(ValidationError, match="amount must be positive"):
        wallet.transfer("P1", "P2", Money(amount_minor, eur), reference="t-bad")  # -5.00 would pull from P2
    assert (available(wallet, "P1"), available(wallet, "P2")) == ("100.00", "10.00") and entry_count(db) == 3


def test_a_replayed_transfer_reports_the_balance_now_and_moves_nothing(db, wallet):
    first = wallet.transfer("P1", "P2", "30.00", reference="t-1")
    wallet.withdraw("P1", "20.00", reference="w-1")
    again = wallet.transfer("P1", "P2", "30.00", reference="t-1")
    assert again.replayed and again.entry_id == first.entry_id
    assert again.balance.available.format() == "50.00"  # 100 - 30 - 20: read now, not the first result's
    assert (available(wallet, "P1"), available(wallet, "P2")) == ("50.00", "40.00") and entry_count(db) == 5


def test_a_second_rate_for_the_same_pair_and_instant_is_refused(db):
    fx.set_rate(db, "EUR", "USD", "1.0854", effective_at=T0)
    with pytest.raises(ValidationError, match="already effective"):
        fx.set_rate(db, "EUR", "USD", "1.2000", effective_at=T0)
    with db.engine.connect() as connection:
        assert fx.rate_at(connection, "EUR", "USD", T0 + dt.timedelta(hours=1)).rate == fx.parse_rate("1.0854")


def test_one_player_created_twice_at_once_with_two_currencies_is_a_conflict(db):
    """Race: P9/EUR is uncommitted when P9/USD arrives; PostgreSQL's insert-ignore then finds the row."""
    wallet = Wallet(db)
    outcome = interleave(
        db,
        hold=lambda c: _create_in(c, "P9", "EUR"),
        contender=lambda: wallet.create_player("P9", "USD"),
    )
    assert isinstance(outcome, IdempotencyConflictError) and "currency EUR" in str(outcome)
    assert wallet.balance("P9").available == Money.parse("0", "EUR", allow_zero=True)


def _create_in(connection, player_id: str, currency_code: str) -> None:
    """The holder's half of ``Wallet.create_player``: the player row and its accounts, uncommitted."""
    from transfer_wallet.models import Player, utc_now

    players = Player.__table__  # type: ignore[attr-defined]
    connection.execute(players.insert().values(id=player_id, currency=currency_code, created_at=utc_now()))
    ledger.create_player_accounts(connection, player_id, currency_code)


def _leg(ref: ledger.AccountRef, amount_minor: int) -> ledger.Leg:
    return ledger.Leg(ref, amount_minor)


def test_the_ledger_refuses_malformed_entries_and_writes_nothing(db, wallet):
    """Programmer-error guards of ``ledger.post``: an entry that would break double entry never lands."""

    def attempt(legs_of, key: str = "bad-entry") -> None:
        def work(connection):
            _, main, _ = ledger.player_accounts(db, connection, "P1")
            _, other, _ = ledger.player_accounts(db, connection, "P2")
            cashier = ledger.system_account(db, connection, ledger.CASHIER, "EUR")
            ledger.post(connection, kind="test", idempotency_key=key, legs=legs_of(main, other, cashier))

        db.transaction(work)

    cases = [
        (lambda m, o, c: [_leg(m, 500)], "2..", "bad-entry"),  # one leg
        (lambda m, o, c: [_leg(m, 0), _leg(c, 0)], "has amount 0", "bad-entry"),
        (lambda m, o, c: [_leg(m, 500), _leg(c, -499)], "does not balance", "bad-entry"),  # 1 cent created
        (lambda m, o, c: [_leg(m, 500), _leg(m, -500)], "one leg per account", "bad-entry"),
        (lambda m, o, c: [_leg(m, 500), _leg(c, -500)], "idempotency key", ""),
        (lambda m, o, c: [_leg(m, 500), _leg(c, -500)], "idempotency key", "k" * 201),
    ]
    for legs_of, message, key in cases:
        with pytest.raises(ValueError, match=message):
            attempt(legs_of, key)
    with pytest.raises(ValueError, match="not a system account kind"):
        db.transaction(lambda c: ledger.system_account(db, c, "player_main", "EUR"))
    assert (available(wallet, "P1"), available(wallet, "P2")) == ("100.00", "10.00") and entry_count(db) == 3
    assert ledger.check_ledger(db).clean
