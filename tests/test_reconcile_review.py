"""Regression stories from the adversarial review of reconciliation (findings R1, R2, R4).

Each story builds the ledger through the real library (wallet, sessions, the in-memory
provider) and hands reconciliation the report the provider would send.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from reconcile_support import at, report_file
from test_reconcile_run import CONFIG, DAY, NOW, Ledger, rows_of, stored
from transfer_wallet.errors import ProviderUnavailableError
from transfer_wallet.models import Transfer
from transfer_wallet.play import PlayMirror
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.reconcile.run import reconcile
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.sessions.state import SETTLED_LOCALLY
from transfer_wallet.money import Money
from transfer_wallet.wallet import Wallet

NEXT_DAY = DAY + dt.timedelta(days=1)


class LedgerView:
    """Just the database, for ``Ledger.transfers`` on a ledger built with another policy."""

    def __init__(self, db) -> None:
        self.db = db


def run(db, rows: list[dict], day: dt.date, now: dt.datetime, salt: str = ""):
    return reconcile(db, CONFIG, day, report_file(rows, salt=salt), now=now)


def open_kinds(db) -> list[tuple[str, dt.date]]:
    return sorted((d.kind, d.business_date) for d in stored(db) if d.status in ("open", "investigating"))


def test_a_transfer_the_provider_applies_again_the_next_day_under_a_new_id_is_a_duplicate(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 23:30", "2026-12-01 23:40")
    rows = rows_of(book.transfers())
    assert run(db, rows, DAY, NOW).kinds == {}
    transfer_out = rows[1]
    second = {**transfer_out, "provider_tx_id": "px-second-application", "created_at": at("2026-12-02 00:05")}
    result = run(db, [second], NEXT_DAY, NOW + dt.timedelta(days=1))
    assert result.kinds == {"DUPLICATE_AT_PROVIDER": 1}
    [found] = stored(db, kind="DUPLICATE_AT_PROVIDER")
    assert (found.transfer_id, found.provider_tx_id, found.business_date) == (
        transfer_out["reference"], "px-second-application", NEXT_DAY)
    assert found.actual_minor == transfer_out["amount_minor"]
    # The first day stays clean on a re-run: the second application does not excuse the first.
    assert run(db, rows, DAY, NOW + dt.timedelta(days=1, hours=1), salt="rerun").kinds == {}


def test_a_report_row_under_another_provider_id_than_the_one_confirmed_to_us_is_a_finding(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 10:00", "2026-12-01 10:30")
    rows = rows_of(book.transfers())
    rows[1] = {**rows[1], "provider_tx_id": "px-rekeyed"}
    result = run(db, rows, DAY, NOW)
    assert result.kinds == {"PROVIDER_TX_ID_MISMATCH": 1}
    [found] = stored(db)
    assert found.provider_tx_id == "px-rekeyed" and found.difference_minor == 0


def test_a_transfer_out_in_doubt_overnight_and_applied_next_morning_leaves_nothing_open(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 09:30")
    book.clock[0] = at("2026-12-01 10:00")
    book.provider.fail_next(ProviderUnavailableError("down"), operations={"transfer_out"})
    with db.engine.connect() as connection:
        session_id = connection.execute(select(Transfer.__table__.c.session_id)).scalar_one()
    book.manager.close_session(session_id, now=book.clock[0])
    first = rows_of(book.transfers())
    transfer_in, transfer_out = first[0], first[1]
    assert run(db, [transfer_in], DAY, NOW).kinds == {"PENDING_IN_LEDGER": 1}

    book.clock[0] = at("2026-12-02 09:00")
    book.manager.resolve_in_doubt(now=book.clock[0])
    settled = {t["reference"]: t for t in book.transfers()}[transfer_out["reference"]]
    assert settled["ledger_status"] == "completed"
    applied = {k: v for k, v in settled.items() if k != "ledger_status"} | {"created_at": at("2026-12-02 09:00")}
    assert run(db, [applied], NEXT_DAY, NOW + dt.timedelta(days=1)).kinds == {}
    assert run(db, [transfer_in], DAY, NOW + dt.timedelta(days=1, hours=1), salt="rerun").kinds == {}
    assert open_kinds(db) == []


def test_a_zero_transfer_out_settled_here_is_not_missing_at_the_provider(db):
    clock = [at("2026-12-01 10:00")]
    provider = InMemoryProvider(name="acme", currency_code="EUR", clock=lambda: clock[0])
    policy = SessionPolicy("EUR", idle_timeout_s=900, max_session_s=36000, max_open_sessions=2)
    manager = SessionManager(db, {"acme": provider}, {"acme": policy}, clock=lambda: clock[0])
    Wallet(db).create_player("P1", "EUR")
    Wallet(db).deposit("P1", "100.00", reference="dep-P1")
    session = manager.open_session("P1", "acme", "50.00")
    provider.play("P1", Money.parse("50.00", "EUR"), Money.parse("0", "EUR", allow_zero=True))
    PlayMirror(db).bet(session.id, "bet-1", "round-1", "50.00")
    clock[0] = at("2026-12-01 10:30")
    closed = manager.close_session(session.id)
    assert [t.provider_tx_id for t in closed.transfers if t.direction == "OUT"] == [SETTLED_LOCALLY]
    transfers = [t for t in rows_of(Ledger.transfers(LedgerView(db))) if t["direction"] == "IN"]
    result = run(db, transfers, DAY, NOW)
    assert result.kinds == {} and result.counts["ledger_rows"] == 1
