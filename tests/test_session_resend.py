"""A refused transfer-out is only believed once the provider's status agrees.

Real providers often answer a re-sent transaction id with "duplicate"/rejected instead of
the first result, so the refusal of a re-sent transfer-out whose first attempt may have
applied proves nothing. The close asks ``transfer_status`` before it books a refusal:
applied settles (the player is paid once), not there or failed is the refusal it says,
and a status that cannot be read leaves the transfer in doubt with nothing booked.

Runs on SQLite, on PostgreSQL with the server steps and with the Python steps.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from transfer_wallet.errors import OutcomeUnknownError, ProviderUnavailableError, RejectedError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import Posting
from transfer_wallet.money import Money, currency
from transfer_wallet.providers.protocol import TransferState, TransferStatus
from transfer_wallet.wallet import Wallet

from session_switch import db  # noqa: F401  (sqlite, postgres with the server steps, postgres with the Python steps)
from test_sessions import acme, manager  # noqa: F401  (the provider at T0; P1 with 100.00, acme's policy)

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
EUR = currency("EUR")


def balances(manager) -> tuple[int, int]:
    balance = Wallet(manager.db).balance("P1")
    return balance.available.amount_minor, balance.locked.amount_minor


def posting_count(manager) -> int:
    with manager.db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Posting)).scalar_one())


def close_lost_then_rejected(manager, acme):
    """Open 27.52, the close is applied at the provider but its answer lost, the re-send is rejected."""
    session = manager.open_session("P1", "acme", "27.52", now=T0)
    acme.fail_next(OutcomeUnknownError("response lost"), apply=True)
    first = manager.close_session(session.id, now=T0)
    assert first.status == "closing" and first.in_doubt
    assert acme.balance("P1").amount_minor == 0  # the provider did pay the 27.52 back
    acme.fail_next(RejectedError("duplicate transaction"))
    return session


def test_a_rejected_re_send_of_an_applied_transfer_out_pays_the_player_once(manager, acme):
    session = close_lost_then_rejected(manager, acme)
    closed = manager.close_session(session.id, now=T0)
    assert closed.status == "closed" and not closed.in_doubt
    assert closed.amount_out == Money(2752, EUR)
    assert [t.status for t in closed.transfers if t.direction == "OUT"] == ["completed"]
    assert balances(manager) == (10_000, 0)
    assert check_ledger(manager.db).clean
    # later passes find nothing to do and book nothing more
    before = posting_count(manager)
    assert manager.close_session(session.id, now=T0).status == "closed"
    manager.resolve_in_doubt(now=T0 + dt.timedelta(hours=1))
    manager.expire_sessions(now=T0 + dt.timedelta(hours=1))
    assert posting_count(manager) == before and balances(manager) == (10_000, 0)
    assert [c[0] for c in acme.calls].count("transfer_out") == 2


def test_a_refusal_the_status_confirms_is_retried_under_a_new_id(manager, acme):
    session = manager.open_session("P1", "acme", "27.52", now=T0)
    acme.fail_next(OutcomeUnknownError("timeout"), apply=False)  # never reached the provider
    manager.close_session(session.id, now=T0)
    acme.fail_next(RejectedError("player busy"))
    refused = manager.close_session(session.id, now=T0)
    assert refused.status == "closing" and not refused.in_doubt
    assert [t.status for t in refused.transfers if t.direction == "OUT"] == ["refused"]
    assert ("transfer_status", f"{session.id}-out1") in acme.calls
    closed = manager.close_session(session.id, now=T0 + dt.timedelta(minutes=5))
    assert closed.status == "closed" and closed.amount_out == Money(2752, EUR)
    assert [t.id for t in closed.transfers if t.status == "completed" and t.direction == "OUT"] == [f"{session.id}-out2"]
    assert balances(manager) == (10_000, 0) and check_ledger(manager.db).clean


def test_a_status_that_says_failed_confirms_the_refusal(manager, acme):
    session = manager.open_session("P1", "acme", "27.52", now=T0)
    acme.fail_next(RejectedError("player busy"))
    acme.script_status(f"{session.id}-out1", TransferStatus(f"{session.id}-out1", TransferState.FAILED))
    refused = manager.close_session(session.id, now=T0)
    assert [t.status for t in refused.transfers if t.direction == "OUT"] == ["refused"]
    assert balances(manager) == (7_248, 2_752)


@pytest.mark.parametrize("status_error", [ProviderUnavailableError("503"), OutcomeUnknownError("timeout")])
def test_a_status_that_cannot_be_read_leaves_the_transfer_in_doubt(manager, acme, status_error):
    session = close_lost_then_rejected(manager, acme)
    acme.fail_next(status_error, operations={"transfer_status"})
    before = posting_count(manager)
    doubtful = manager.close_session(session.id, now=T0)
    assert doubtful.status == "closing" and doubtful.in_doubt
    assert [t.status for t in doubtful.transfers if t.direction == "OUT"] == ["in_doubt"]
    assert posting_count(manager) == before and balances(manager) == (7_248, 2_752)
    # the in-doubt job asks again, hears "applied", and settles once
    report = manager.resolve_in_doubt(now=T0 + dt.timedelta(hours=1))
    assert report.completed == 1
    assert manager.get(session.id).status == "closed" and balances(manager) == (10_000, 0)
    assert check_ledger(manager.db).clean


def test_a_transfer_in_that_lands_between_status_and_re_send_is_not_refunded(manager, acme):
    """The in-doubt job re-sends an unseen transfer-in; the first attempt lands meanwhile and the
    re-send is rejected as a duplicate: the status asked again says applied, the session opens."""
    acme.fail_next(OutcomeUnknownError("response lost"), apply=True)
    session = manager.open_session("P1", "acme", "27.52", now=T0)
    assert session.status == "opening" and session.in_doubt
    transfer_id = f"{session.id}-in"
    acme.script_status(transfer_id, TransferStatus(transfer_id, TransferState.NOT_FOUND))  # not yet visible
    acme.fail_next(RejectedError("duplicate transaction"))
    report = manager.resolve_in_doubt(now=T0 + dt.timedelta(hours=1))
    assert report.completed == 1 and report.refunded == 0
    view = manager.get(session.id)
    assert view.status == "active" and view.game_balance == Money(2752, EUR)
    assert balances(manager) == (7_248, 2_752) and acme.balance("P1").amount_minor == 2752
    closed = manager.close_session(session.id, now=T0 + dt.timedelta(hours=1))
    assert closed.status == "closed" and balances(manager) == (10_000, 0)
    assert check_ledger(manager.db).clean


def test_a_re_send_after_an_unseen_status_that_is_refused_again_refunds(manager, acme):
    """Status says not there, the re-send is refused, the status still says not there: refused, funds back."""
    acme.fail_next(OutcomeUnknownError("timeout"), apply=False)
    session = manager.open_session("P1", "acme", "27.52", now=T0)
    acme.fail_next(RejectedError("player blocked"))
    report = manager.resolve_in_doubt(now=T0 + dt.timedelta(hours=1))
    assert report.refunded == 1
    assert manager.get(session.id).status == "failed" and balances(manager) == (10_000, 0)
    assert [c[0] for c in acme.calls].count("transfer_status") == 2
