"""What a provider answers is booked only if it is about the transfer we asked for, exactly.

Worked examples on both databases: a wrong answer leaves the money locked (in doubt),
a mismatching amount is also flagged, a late answer for a finished transfer changes
nothing, a conflicting transfer id refunds and is flagged, and a sweep reports a
session it cannot handle without stopping.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from transfer_wallet.errors import OutcomeUnknownError, RejectedError, TransferConflictError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import Discrepancy
from transfer_wallet.money import Money
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.providers.protocol import Direction, TransferState, TransferStatus
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

from session_switch import db  # noqa: F401  (sqlite, postgres with the server steps, postgres with the Python steps)

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
LATER = T0 + dt.timedelta(minutes=5)


def eur(text: str) -> Money:
    return Money.parse(text, "EUR", allow_zero=True)


@pytest.fixture
def acme():
    return InMemoryProvider(name="acme", clock=lambda: T0)


@pytest.fixture
def manager(db, acme):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="dep-1")
    return SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)


def balances(manager) -> tuple[str, str]:
    balance = Wallet(manager.db).balance("P1")
    return balance.available.format(), balance.locked.format()


def flagged(manager) -> list[tuple[str, str]]:
    table = Discrepancy.__table__  # type: ignore[attr-defined]
    with manager.db.engine.connect() as connection:
        return [(r.kind, r.detail) for r in connection.execute(select(table).order_by(table.c.id))]


def in_doubt_open(manager, acme):
    """P1 locks 30.00 for acme; the answer is lost before the provider saw it."""
    acme.fail_next(OutcomeUnknownError("read timeout"))
    session = manager.open_session("P1", "acme", "30.00", now=T0)
    assert (session.status, session.in_doubt) == ("opening", True)
    return session, session.transfers[0].id


@pytest.mark.parametrize(("answer", "why"), [
    (lambda t: TransferStatus("someone-else-in", TransferState.APPLIED, Direction.IN, "P1", eur("30.00"), "x1", T0),
     "provider answered for transfer 'someone-else-in'"),
    (lambda t: TransferStatus(t, TransferState.APPLIED, Direction.OUT, "P1", eur("30.00"), "x1", T0),
     "provider answered OUT for IN transfer"),
    (lambda t: TransferStatus(t, TransferState.APPLIED, Direction.IN, "P2", eur("30.00"), "x1", T0),
     "provider answered for player 'P2', not 'P1'"),
])
def test_a_status_about_another_transfer_direction_or_player_keeps_the_money_locked(manager, acme, answer, why):
    session, transfer_id = in_doubt_open(manager, acme)
    acme.script_status(transfer_id, answer(transfer_id))

    report = manager.resolve_in_doubt(LATER)

    assert (report.examined, report.still_in_doubt, report.completed, report.refunded) == (1, 1, 0, 0)
    view = manager.get(session.id)
    assert (view.status, view.in_doubt) == ("opening", True)
    assert why in (view.transfers[0].last_error or "")
    assert balances(manager) == ("70.00", "30.00")
    assert check_ledger(manager.db).clean


@pytest.mark.parametrize(("moved", "why"), [
    (Money(-3000, Money.parse("1.00", "EUR").currency), "provider reports a negative amount -30.00 EUR for transfer {t}"),
    (eur("29.00"), "provider moved 29.00 EUR for transfer {t}, but we asked for 30.00 EUR"),
])
def test_an_applied_status_with_another_amount_is_not_booked_but_flagged(manager, acme, moved, why):
    session, transfer_id = in_doubt_open(manager, acme)
    acme.script_status(transfer_id, TransferStatus(transfer_id, TransferState.APPLIED, Direction.IN, "P1", moved, "x1", T0))

    report = manager.resolve_in_doubt(LATER)

    assert (report.examined, report.completed, report.still_in_doubt) == (1, 0, 1)  # not "completed" (review finding)
    view = manager.get(session.id)
    assert view.in_doubt and view.transfers[0].status == "in_doubt"
    assert (view.status, balances(manager)) == ("opening", ("70.00", "30.00"))
    assert flagged(manager) == [("PROVIDER_ANSWER_MISMATCH", why.format(t=transfer_id))]
    assert check_ledger(manager.db).clean


def test_a_transfer_id_the_provider_holds_for_other_content_refunds_and_is_flagged(manager, acme):
    acme.fail_next(TransferConflictError("acme: transfer was used with different content"))

    session = manager.open_session("P1", "acme", "30.00", now=T0)

    assert session.status == "failed" and balances(manager) == ("100.00", "0.00")
    assert flagged(manager) == [("TRANSFER_CONFLICT", f"provider holds another transfer under id {session.id}-in")]
    assert check_ledger(manager.db).clean


def test_late_answers_for_a_transfer_already_finished_change_nothing(manager, acme, db):
    session = manager.open_session("P1", "acme", "30.00", now=T0)  # transfer-in completed
    transfer_id = session.transfers[0].id
    policy = manager.policies["acme"]

    db.transaction(lambda c: manager._applied(c, policy, transfer_id, eur("30.00"), "x2", LATER))
    db.transaction(lambda c: manager._refused(c, policy, transfer_id, RejectedError("late 4xx"), LATER))
    db.transaction(lambda c: manager._in_doubt(c, policy, transfer_id, OutcomeUnknownError("late timeout"), LATER))

    view = manager.get(session.id)
    assert (view.status, view.in_doubt, view.transfers[0].status) == ("active", False, "completed")
    assert view.transfers[0].attempts == 0 and view.transfers[0].last_error is None
    assert balances(manager) == ("70.00", "30.00")
    assert check_ledger(db).clean


def test_a_sweep_reports_a_session_it_cannot_handle_and_goes_on(manager, acme, db):
    first = manager.open_session("P1", "acme", "30.00", now=T0)
    acme.fail_next(OutcomeUnknownError("read timeout"))
    Wallet(db).create_player("P2", "EUR")
    Wallet(db).deposit("P2", "50.00", reference="dep-2")
    doubtful = manager.open_session("P2", "acme", "20.00", now=T0)
    unconfigured = SessionManager(db, {}, {}, clock=lambda: T0)  # e.g. acme was removed from the providers file

    expired = unconfigured.expire_sessions(T0 + dt.timedelta(hours=5))
    resolved = unconfigured.resolve_in_doubt(T0 + dt.timedelta(hours=5))

    assert expired.examined == 1 and expired.errors == [
        f"{first.id}: NotFoundError: unknown provider 'acme' (known: none configured)"]
    assert resolved.examined == 1 and resolved.errors == [
        f"{doubtful.transfers[0].id}: NotFoundError: unknown provider 'acme' (known: none configured)"]
    assert balances(manager) == ("70.00", "30.00")  # nothing moved: the next pass with acme finishes it
    assert manager.expire_sessions(T0 + dt.timedelta(hours=5)).closed == 1


def test_a_sweep_told_to_stop_stops_before_the_next_item_and_says_so(manager, acme, db):
    """A job whose lease was lost must not go on sweeping rows another process may hold."""
    Wallet(db).create_player("P2", "EUR")
    Wallet(db).deposit("P2", "100.00", reference="dep-2")
    for player in ("P1", "P2"):
        manager.open_session(player, "acme", "10.00", now=T0)
    asked = []

    def keep_going() -> bool:
        asked.append(True)
        return len(asked) == 1  # the lease is lost after the first session

    report = manager.expire_sessions(T0 + dt.timedelta(hours=5), keep_going=keep_going)

    assert (report.examined, report.closed, report.stopped_early) == (1, 1, True)
    assert sorted(s.status for s in manager.list()) == ["active", "closed"]
    finished = manager.expire_sessions(T0 + dt.timedelta(hours=5), keep_going=lambda: True)
    assert (finished.examined, finished.closed, finished.stopped_early) == (1, 1, False)
    assert check_ledger(db).clean
