"""Worked examples for the money branches of the session lifecycle that no other story reaches.

Each test is a short accounting story with literal amounts, run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from transfer_wallet import fx, ledger
from transfer_wallet.errors import ConcurrencyError, InvalidStateError, OutcomeUnknownError, RejectedError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import Discrepancy, GameSession, Transfer
from transfer_wallet.money import Money
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.providers.protocol import Direction, TransferState, TransferStatus
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.sessions.state import move, session_row, transfer_row
from transfer_wallet.wallet import Wallet

from session_switch import db  # noqa: F401  (sqlite, postgres with the server steps, postgres with the Python steps)

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
_sessions = GameSession.__table__  # type: ignore[attr-defined]
_transfers = Transfer.__table__  # type: ignore[attr-defined]


def funded(db, player_id: str, ccy: str, amount: str) -> Wallet:
    wallet = Wallet(db)
    wallet.create_player(player_id, ccy)
    wallet.deposit(player_id, amount, reference=f"dep-{player_id}")
    return wallet


def balances(db, player_id: str) -> tuple[str, str]:
    balance = Wallet(db).balance(player_id)
    return balance.available.format(), balance.locked.format()


def system_balance(db, code: str) -> int | None:
    """The derived balance of a system account; None if it was never created."""
    with db.engine.connect() as connection:
        account = ledger.account_by_code(connection, code)
        return None if account is None else ledger.derived_balance(connection, account.id)


def kinds(db) -> list[str]:
    with db.engine.connect() as connection:
        return [r.kind for r in connection.execute(select(Discrepancy.__table__).order_by(Discrepancy.__table__.c.id))]


def test_the_providers_status_failed_refunds_the_locked_money(db):
    funded(db, "P1", "EUR", "100.00")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)
    acme.fail_next(OutcomeUnknownError("read timeout"))  # not applied; we cannot know that
    session = manager.open_session("P1", "acme", "30.00", now=T0)
    assert (session.status, session.in_doubt) == ("opening", True)
    assert balances(db, "P1") == ("70.00", "30.00")
    transfer_id = session.transfers[0].id
    acme.script_status(transfer_id, TransferStatus(
        transfer_id, TransferState.FAILED, Direction.IN, "P1", Money.parse("30.00", "EUR"), None, T0, "DECLINED"))

    report = manager.resolve_in_doubt(T0 + dt.timedelta(minutes=5))

    assert (report.examined, report.refunded, report.completed) == (1, 1, 0)
    failed = manager.get(session.id)
    assert failed.status == "failed" and "DECLINED" in (failed.failure_reason or "")
    assert failed.transfers[0].status == "refused"
    assert balances(db, "P1") == ("100.00", "0.00")
    assert check_ledger(db).clean


def test_a_refused_cross_currency_transfer_in_gives_back_its_fx_residue(db):
    fx.set_rate(db, "JPY", "EUR", "0.0062", effective_at=T0 - dt.timedelta(days=1))
    funded(db, "J1", "JPY", "1001")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)
    acme.fail_next(RejectedError("player blocked at provider"))

    session = manager.open_session("J1", "acme", "1001", now=T0)  # 6.2062 EUR -> 6.20; 1 JPY was residue

    assert session.status == "failed"
    assert session.amount_in.format() == "1000"
    assert balances(db, "J1") == ("1001", "0")  # the 1 JPY residue came back too
    assert system_balance(db, "fx_rounding:JPY") == 0  # it held the 1 JPY and gave it back
    report = check_ledger(db)
    assert report.clean and report.totals == {"JPY": 0}


def test_settlement_falls_back_to_the_inverse_transfer_in_rate_without_a_reverse_rate(db):
    fx.set_rate(db, "EUR", "USD", "1.0854", effective_at=T0 - dt.timedelta(days=1))  # no USD -> EUR rate
    funded(db, "P1", "EUR", "100.00")
    usd = InMemoryProvider(name="dollarama", currency_code="USD", clock=lambda: T0)
    manager = SessionManager(db, {"dollarama": usd}, {"dollarama": SessionPolicy("USD")}, clock=lambda: T0)
    session = manager.open_session("P1", "dollarama", "10.00", now=T0)
    assert session.game_amount_in == Money.parse("10.85", "USD")

    closed = manager.close_session(session.id, now=T0)

    out = closed.transfers[-1]
    assert out.fx_rate == "0.921319329279"  # 1 / 1.0854, rounded down at 12 places
    assert closed.amount_out == Money.parse("9.99", "EUR")  # 10.85 * 0.921319329279 = 9.9963... -> 9.99
    assert balances(db, "P1") == ("99.99", "0.00")
    assert system_balance(db, "house:dollarama:EUR") == 1
    assert check_ledger(db).clean


@pytest.mark.parametrize(("max_open", "sent_amount"), [(1, None), (2, Money.parse("25.00", "EUR"))])
def test_a_repeated_close_re_sends_the_in_doubt_transfer_out_under_the_same_id(db, max_open, sent_amount):
    funded(db, "P1", "EUR", "100.00")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR", max_open_sessions=max_open)},
                             clock=lambda: T0)
    session = manager.open_session("P1", "acme", "25.00", now=T0)
    acme.fail_next(OutcomeUnknownError("connection reset"))  # the transfer-out never reached the provider
    closing = manager.close_session(session.id, now=T0)
    assert (closing.status, closing.in_doubt) == ("closing", True)
    assert balances(db, "P1") == ("75.00", "25.00")

    closed = manager.close_session(session.id, now=T0 + dt.timedelta(minutes=1))

    outs = [c for c in acme.calls if c[0] == "transfer_out"]
    assert outs == [("transfer_out", f"{session.id}-out1", "P1", sent_amount)] * 2
    assert closed.status == "closed" and closed.amount_out == Money.parse("25.00", "EUR")
    assert balances(db, "P1") == ("100.00", "0.00")
    assert check_ledger(db).clean


def test_a_settle_of_a_transfer_finished_concurrently_books_nothing(db):
    funded(db, "P1", "EUR", "100.00")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)
    session = manager.open_session("P1", "acme", "40.00", now=T0)
    acme.fail_next(OutcomeUnknownError("lost"), apply=True)  # applied at the provider, unknown to us
    manager.close_session(session.id, now=T0)
    transfer_id = f"{session.id}-out1"

    def settle_with_stale_rows(connection):
        stale_session, stale_transfer = session_row(connection, session.id), transfer_row(connection, transfer_id)
        # another worker finishes the transfer between our read and our settle
        connection.execute(update(_transfers).where(_transfers.c.id == transfer_id).values(status="completed"))
        manager._settle(connection, stale_session, stale_transfer, Money.parse("40.00", "EUR"), "acme-tx9", T0)

    with pytest.raises(InvalidStateError, match="was finished concurrently"):
        db.transaction(settle_with_stale_rows)

    assert balances(db, "P1") == ("60.00", "40.00")  # the settle entry was rolled back with the rest
    assert manager.get(session.id).status == "closing"
    assert check_ledger(db).clean


def test_the_transition_guard_refuses_a_move_the_table_does_not_allow(db):
    funded(db, "P1", "EUR", "100.00")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)
    session = manager.close_session(manager.open_session("P1", "acme", "10.00", now=T0).id, now=T0)
    assert session.status == "closed"

    with pytest.raises(InvalidStateError, match=f"session {session.id} cannot go from closed to active"):
        db.transaction(lambda c: move(c, session_row(c, session.id), "active"))
    assert manager.get(session.id).status == "closed"


def test_a_transition_from_a_state_that_changed_meanwhile_raises_a_concurrency_error(db):
    funded(db, "P1", "EUR", "100.00")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)
    session = manager.open_session("P1", "acme", "10.00", now=T0)

    def close_from_a_stale_read(connection):
        stale = session_row(connection, session.id)  # read: active
        connection.execute(update(_sessions).where(_sessions.c.id == session.id).values(status="closing"))
        move(connection, stale, "closing", closing_at=T0, close_reason="player")

    with pytest.raises(ConcurrencyError, match="changed state concurrently; try again"):
        db.transaction(close_from_a_stale_read)
    assert manager.get(session.id).status == "active"  # rolled back: the retry starts from the truth
    assert balances(db, "P1") == ("90.00", "10.00")
