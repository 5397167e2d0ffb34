"""Play mirroring: bets, wins and refunds with the semantics real wallets use."""

from __future__ import annotations

import datetime as dt

import pytest

from transfer_wallet.errors import IdempotencyConflictError, InsufficientFundsError, InvalidStateError
from transfer_wallet.play import PlayMirror
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def session(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="d1")
    manager = SessionManager(db, {"acme": InMemoryProvider(name="acme")}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)
    return manager.open_session("P1", "acme", "20.00", now=T0)


@pytest.fixture
def mirror(db):
    return PlayMirror(db)


def test_bets_and_wins_move_the_game_balance(session, mirror):
    assert mirror.bet(session.id, "b1", "r1", "5.00").game_balance.format() == "15.00"
    assert mirror.win(session.id, "w1", "r1", "12.00").game_balance.format() == "27.00"


def test_the_same_transaction_replays_and_different_content_conflicts(session, mirror):
    first = mirror.bet(session.id, "b1", "r1", "5.00")
    again = mirror.bet(session.id, "b1", "r1", "5.00")
    assert again.replayed and again.game_balance == first.game_balance
    with pytest.raises(IdempotencyConflictError):
        mirror.bet(session.id, "b1", "r1", "6.00")
    assert mirror.win(session.id, "w1", "r1", "0.00").game_balance.format() == "15.00"


def test_a_bet_above_the_game_balance_is_refused_as_insufficient_funds(session, mirror):
    with pytest.raises(InsufficientFundsError, match="402"):
        mirror.bet(session.id, "b1", "r1", "20.01")
    assert mirror.bet(session.id, "b2", "r2", "20.00").game_balance.format() == "0.00"


def test_a_refund_returns_the_stake_once(session, mirror):
    mirror.bet(session.id, "b1", "r1", "5.00")
    refunded = mirror.refund(session.id, "x1", "r1", "b1")
    assert refunded.game_balance.format() == "20.00" and refunded.amount.format() == "5.00"
    second = mirror.refund(session.id, "x2", "r1", "b1")  # a second refund does nothing
    assert second.game_balance.format() == "20.00" and "already refunded" in second.note
    assert mirror.refund(session.id, "x1", "r1", "b1").replayed


def test_a_refund_of_an_unknown_bet_is_remembered_and_the_late_bet_refused(session, mirror):
    tombstone = mirror.refund(session.id, "x1", "r1", "b-late")
    assert tombstone.amount.format() == "0.00" and "remembered" in tombstone.note
    with pytest.raises(InvalidStateError, match="already rolled back"):
        mirror.bet(session.id, "b-late", "r1", "5.00")
    assert mirror.bet(session.id, "b-other", "r2", "5.00").game_balance.format() == "15.00"


def test_a_refund_after_the_rounds_win_is_refused(session, mirror):
    mirror.bet(session.id, "b1", "r1", "5.00")
    mirror.win(session.id, "w1", "r1", "7.00")
    with pytest.raises(InvalidStateError, match="already has its win"):
        mirror.refund(session.id, "x1", "r1", "b1")


def test_play_on_a_closed_session_is_refused(db, session, mirror):
    manager = SessionManager(db, {"acme": InMemoryProvider(name="acme")}, {"acme": SessionPolicy("EUR")})
    mirror.bet(session.id, "b1", "r1", "1.00")
    manager.providers["acme"].transfer_in(f"{session.id}-in", "P1", session.game_amount_in)
    manager.close_session(session.id, now=T0)
    with pytest.raises(InvalidStateError, match="closed"):
        mirror.bet(session.id, "b2", "r2", "1.00")


def test_a_provider_round_is_mirrored_once_however_often_its_history_is_read(session, mirror):
    from transfer_wallet.money import Money, currency
    from transfer_wallet.providers.protocol import Round

    eur = currency("EUR")
    won = Round("acme-r1", "P1", "slot", Money(500, eur), Money(1200, eur), Money(0, eur), T0, T0)
    refunded = Round("acme-r2", "P1", "slot", Money(300, eur), Money(0, eur), Money(300, eur), T0, T0)
    assert mirror.mirror_round(session.id, won).game_balance.format() == "27.00"
    assert mirror.mirror_round(session.id, refunded).game_balance.format() == "27.00"
    again = mirror.mirror_round(session.id, won)
    assert again.replayed and again.game_balance.format() == "27.00"
