"""Worked examples for the play-mirroring branches that refuse to move a session's game money.

Two players each play a 20.00 EUR session at acme; every refused bet, win or refund leaves
both game balances exactly where they were. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from tests.money_branches_support import interleave
from transfer_wallet.errors import IdempotencyConflictError, InvalidStateError, ValidationError
from transfer_wallet.models import PlayTransaction
from transfer_wallet.money import Money
from transfer_wallet.play import PlayMirror
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.sessions.state import session_row
from transfer_wallet.wallet import Wallet

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
_plays = PlayTransaction.__table__  # type: ignore[attr-defined]


@pytest.fixture
def two_sessions(db):
    """Sessions of P1 and P2 at acme, 20.00 EUR each."""
    wallet = Wallet(db)
    manager = SessionManager(db, {"acme": InMemoryProvider(name="acme")}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)
    ids = []
    for player in ("P1", "P2"):
        wallet.create_player(player, "EUR")
        wallet.deposit(player, "100.00", reference=f"dep-{player}")
        ids.append(manager.open_session(player, "acme", "20.00", now=T0).id)
    return ids


def game_balance(db, session_id: str) -> int:
    with db.engine.connect() as connection:
        return session_row(connection, session_id).game_balance_minor


def test_a_bet_into_a_round_that_already_has_its_win_is_refused(db, two_sessions):
    s1, _ = two_sessions
    mirror = PlayMirror(db)
    mirror.bet(s1, "b1", "r1", "5.00", now=T0)
    mirror.win(s1, "w1", "r1", "8.00", now=T0)  # 20.00 - 5.00 + 8.00 = 23.00, round r1 settled
    with pytest.raises(InvalidStateError, match="already settled"):
        mirror.bet(s1, "b2", "r1", "3.00", now=T0)
    assert game_balance(db, s1) == 2300


def test_a_win_on_a_refunded_round_is_refused(db, two_sessions):
    s1, _ = two_sessions
    mirror = PlayMirror(db)
    mirror.bet(s1, "b1", "r1", "5.00", now=T0)
    mirror.refund(s1, "x1", "r1", "b1", now=T0)  # back to 20.00
    with pytest.raises(InvalidStateError, match="was refunded"):
        mirror.win(s1, "w1", "r1", "50.00", now=T0)
    assert game_balance(db, s1) == 2000


def test_a_refund_that_names_a_win_instead_of_a_bet_is_refused(db, two_sessions):
    s1, _ = two_sessions
    mirror = PlayMirror(db)
    mirror.bet(s1, "b1", "r1", "5.00", now=T0)
    mirror.win(s1, "w1", "r2", "7.00", now=T0)  # 20.00 - 5.00 + 7.00 = 22.00
    with pytest.raises(ValidationError, match="is a win, not a bet"):
        mirror.refund(s1, "x1", "r2", "w1", now=T0)
    assert game_balance(db, s1) == 2200


def test_a_refund_of_another_sessions_bet_is_refused(db, two_sessions):
    s1, s2 = two_sessions
    mirror = PlayMirror(db)
    mirror.bet(s1, "b1", "r1", "5.00", now=T0)  # P1: 15.00
    with pytest.raises(ValidationError, match=f"belongs to session {s1}"):
        mirror.refund(s2, "x1", "r1", "b1", now=T0)  # P2 must not get P1's 5.00
    assert (game_balance(db, s1), game_balance(db, s2)) == (1500, 2000)


def test_a_bet_into_another_sessions_round_is_refused(db, two_sessions):
    s1, s2 = two_sessions
    mirror = PlayMirror(db)
    mirror.bet(s1, "b1", "r1", "5.00", now=T0)
    with pytest.raises(ValidationError, match=f"round 'r1' belongs to session {s1}"):
        mirror.bet(s2, "b2", "r1", "4.00", now=T0)
    assert (game_balance(db, s1), game_balance(db, s2)) == (1500, 2000)  # P2's 4.00 debit rolled back


def test_a_bet_given_as_money_in_another_currency_is_refused(db, two_sessions):
    s1, _ = two_sessions
    with pytest.raises(ValidationError, match="amount is in USD but the session plays in EUR"):
        PlayMirror(db).bet(s1, "b1", "r1", Money.parse("5.00", "USD"), now=T0)
    assert game_balance(db, s1) == 2000


@pytest.mark.parametrize("amount_minor", [0, -500])
def test_a_bet_of_zero_or_negative_money_is_refused(db, two_sessions, amount_minor):
    s1, _ = two_sessions
    with pytest.raises(ValidationError, match="a bet amount must be positive"):
        PlayMirror(db).bet(s1, "b1", "r1", Money(amount_minor, Money.parse("1", "EUR").currency), now=T0)
    assert game_balance(db, s1) == 2000


def test_the_same_provider_transaction_mirrored_into_two_sessions_at_once_is_a_conflict(db, two_sessions):
    """Race: P2's bet 'tx-1' is uncommitted when P1's 'tx-1' arrives; the loser re-reads and conflicts.

    On PostgreSQL the loser's insert waits on the unique index, fails, and runs again
    (``PlayMirror._play``'s retry); on SQLite ``BEGIN IMMEDIATE`` makes it wait up front.
    """
    s1, s2 = two_sessions
    mirror = PlayMirror(db)

    outcome = interleave(
        db,
        hold=lambda connection: mirror._apply(connection, "bet", s2, "tx-1", "r2", "4.00", None, None, T0),
        contender=lambda: mirror.bet(s1, "tx-1", "r1", "5.00", now=T0),
    )

    assert isinstance(outcome, IdempotencyConflictError)
    assert (game_balance(db, s1), game_balance(db, s2)) == (2000, 1600)  # P1's 5.00 was not taken
    with db.engine.connect() as connection:
        rows = connection.execute(select(_plays.c.session_id, _plays.c.amount_minor)).all()
    assert [tuple(r) for r in rows] == [(s2, 400)]
