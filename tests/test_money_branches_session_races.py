"""Race-only branches of the session lifecycle, reached by interleaving two workers.

The holder's step 1 is left uncommitted while the contender runs; on PostgreSQL the
contender is blocked on the holder's unique key and fails with an ``IntegrityError``,
which the library turns into a replay or a conflict. On SQLite the contender waits in
``BEGIN IMMEDIATE`` and sees the committed row instead: the same outcome by another path.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.money_branches_support import interleave
from transfer_wallet.errors import IdempotencyConflictError
from transfer_wallet.ledger import check_ledger, request_digest
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.sessions.state import canonical_amount
from transfer_wallet.wallet import Wallet

from session_switch import db  # noqa: F401  (sqlite, postgres with the server steps, postgres with the Python steps)

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def acme(db):
    wallet = Wallet(db)
    for player in ("P1", "P2"):
        wallet.create_player(player, "EUR")
        wallet.deposit(player, "100.00", reference=f"dep-{player}")
    provider = InMemoryProvider(name="acme", clock=lambda: T0)
    policy = SessionPolicy("EUR")
    return SessionManager(db, {"acme": provider}, {"acme": policy}, clock=lambda: T0), provider, policy


def balances(db, player_id: str) -> tuple[str, str]:
    balance = Wallet(db).balance(player_id)
    return balance.available.format(), balance.locked.format()


def test_one_open_key_used_by_two_players_at_once_locks_money_for_the_first_only(db, acme):
    manager, provider, policy = acme
    digest = request_digest({"player_id": "P2", "provider": "acme", "amount": canonical_amount("30.00")})

    outcome = interleave(
        db,
        hold=lambda c: manager._open_step1(c, "P2", "acme", policy, "30.00", "open-K", digest, T0),
        contender=lambda: manager.open_session("P1", "acme", "25.00", key="open-K", now=T0),
    )

    assert isinstance(outcome, IdempotencyConflictError)
    assert "open-K" in str(outcome)
    assert balances(db, "P1") == ("100.00", "0.00")  # P1's 25.00 lock rolled back
    assert balances(db, "P2") == ("70.00", "30.00")
    assert [c for c in provider.calls if c[0] == "transfer_in"] == []  # nothing was sent for P1
    assert check_ledger(db).clean


def test_one_close_key_used_for_two_sessions_at_once_closes_the_first_only(db, acme):
    manager, provider, _ = acme
    first = manager.open_session("P1", "acme", "20.00", now=T0)
    second = manager.open_session("P2", "acme", "35.00", now=T0)

    outcome = interleave(
        db,
        hold=lambda c: manager._close_step1(c, first.id, "close-K", "player", T0),
        contender=lambda: manager.close_session(second.id, key="close-K", now=T0),
    )

    assert isinstance(outcome, IdempotencyConflictError)
    assert "close-K" in str(outcome)
    assert manager.get(second.id).status == "active"  # still playing, 35.00 still locked
    assert balances(db, "P2") == ("65.00", "35.00")
    assert [c for c in provider.calls if c[0] == "transfer_out"] == []
    assert manager.get(first.id).status == "closing"  # the holder's step 1 went through
    closed = manager.close_session(first.id, key="close-K", now=T0)  # and finishes under its key
    assert closed.status == "closed" and balances(db, "P1") == ("100.00", "0.00")
    assert check_ledger(db).clean
