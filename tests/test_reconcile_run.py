"""Reconciliation stories: a ledger built through the real library, a provider report, one break of each type.

The ledger side is real (wallet deposits and sessions through ``SessionManager`` with the
in-memory provider); the report is the canonical frame ingest would hand over, built from
what the provider did, then changed the way a provider's report goes wrong.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from reconcile_support import at, report_file
from transfer_wallet.config import ProviderConfig, ReportFormat
from transfer_wallet.errors import OutcomeUnknownError, RejectedError
from transfer_wallet.models import Discrepancy, DiscrepancyEvent, ReconciliationRun, Transfer
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.reconcile.frame import TrailerTotals
from transfer_wallet.reconcile.run import reconcile
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

DAY = dt.date(2026, 12, 1)
NOW = at("2026-12-02 06:00")
CONFIG = ProviderConfig(name="acme", base_url="http://127.0.0.1:1", currency="EUR", keys=(),
                        report=ReportFormat(columns={}, values={}, timezone="UTC"))


class Ledger:
    """Sessions at chosen times through the real library; ``transfers()`` as the provider reports them."""

    def __init__(self, db) -> None:
        self.db = db
        self.clock = [at("2026-12-01 10:00")]
        self.provider = InMemoryProvider(name="acme", currency_code="EUR", clock=lambda: self.clock[0])
        policy = SessionPolicy("EUR", idle_timeout_s=900, max_session_s=36000, stuck_after_attempts=3, retry_base_s=30)
        self.manager = SessionManager(db, {"acme": self.provider}, {"acme": policy}, clock=lambda: self.clock[0])
        wallet = Wallet(db)
        for player in ("P1", "P2"):
            wallet.create_player(player, "EUR")
            wallet.deposit(player, "1000.00", reference=f"dep-{player}")

    def session(self, player: str, amount: str, opened: str, closed: str | None = None):
        self.clock[0] = at(opened)
        view = self.manager.open_session(player, "acme", amount, now=self.clock[0])
        if closed:
            self.clock[0] = at(closed)
            view = self.manager.close_session(view.id, now=self.clock[0])
        return view

    def transfers(self) -> list[dict]:
        """Each transfer as the provider's report row (an applied one SUCCESS, else FAILED)."""
        with self.db.engine.connect() as connection:
            rows = connection.execute(select(Transfer.__table__).order_by(Transfer.__table__.c.created_at)).all()
        return [{"provider_tx_id": r.provider_tx_id or f"px-{r.id}", "reference": r.id, "player_id": r.player_id,
                 "direction": r.direction, "amount_minor": r.game_amount_minor, "currency": r.game_currency,
                 "status": "SUCCESS" if r.status == "completed" else "FAILED", "created_at": r.created_at,
                 "ledger_status": r.status} for r in rows]


def rows_of(transfers: list[dict]) -> list[dict]:
    return [{k: v for k, v in t.items() if k != "ledger_status"} for t in transfers]


@pytest.fixture
def ledger(db) -> Ledger:
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 10:00", "2026-12-01 10:30")
    book.session("P2", "20.00", "2026-12-01 12:00", "2026-12-01 12:45")
    return book


def run(ledger: Ledger, rows: list[dict], day: dt.date = DAY, now: dt.datetime = NOW, **kwargs):
    return reconcile(ledger.db, CONFIG, day, report_file(rows, **kwargs), now=now)


def stored(db, **filters) -> list:
    table = Discrepancy.__table__
    query = select(table).order_by(table.c.id)
    for name, value in filters.items():
        query = query.where(table.c[name] == value)
    with db.engine.connect() as connection:
        return connection.execute(query).all()


def only_break(result, kind: str):
    assert result.kinds == {kind: 1}, result.kinds
    return result.breaks.iloc[0]


def test_a_report_that_agrees_with_the_ledger_opens_nothing(ledger):
    result = run(ledger, rows_of(ledger.transfers()))
    assert result.kinds == {} and result.open_count == 0
    assert result.counts["matched_by_reference"] == 4 and result.counts["ledger_rows"] == 4
    assert (result.controls["unexplained_minor"] == 0).all() and result.controls["provider_sum_minor"].sum() > 0


def test_a_transfer_only_the_provider_has_is_missing_in_ledger(ledger):
    rows = rows_of(ledger.transfers()) + [dict(provider_tx_id="px-ghost", reference=None, player_id="P1", direction="IN",
                                               amount_minor=9900, created_at=at("2026-12-01 15:00"))]
    result = run(ledger, rows)
    only_break(result, "MISSING_IN_LEDGER")
    [found] = stored(ledger.db)
    assert (found.kind, found.actual_minor, found.expected_minor, found.difference_minor) == (
        "MISSING_IN_LEDGER", 9900, None, 9900)
    assert json.loads(found.fields) == {"amount": {"provider": "99.00", "ledger": None}}
    assert found.fingerprint == "reconcile:acme:2026-12-01:MISSING_IN_LEDGER:tx:px-ghost"


def test_a_completed_transfer_the_report_lacks_is_missing_at_provider(ledger):
    transfers = ledger.transfers()
    result = run(ledger, rows_of(transfers[1:]))
    only_break(result, "MISSING_AT_PROVIDER")
    [found] = stored(ledger.db)
    assert (found.transfer_id, found.expected_minor, found.difference_minor) == (transfers[0]["reference"], 5000, -5000)


@pytest.mark.parametrize("change, kind, field, values", [
    ({"amount_minor": 5100}, "AMOUNT_MISMATCH", "amount", {"provider": "51.00", "ledger": "50.00"}),
    ({"currency": "USD"}, "CURRENCY_MISMATCH", "currency", {"provider": "USD", "ledger": "EUR"}),
    ({"status": "FAILED"}, "STATUS_MISMATCH", "status", {"provider": "FAILED", "ledger": "completed"}),
    ({"direction": "OUT"}, "TYPE_MISMATCH", "type", {"provider": "OUT", "ledger": "IN"}),
    ({"player_id": "P2"}, "PLAYER_MISMATCH", "player", {"provider": "P2", "ledger": "P1"}),
])
def test_a_field_that_differs_is_one_typed_break_naming_both_values(ledger, change, kind, field, values):
    rows = rows_of(ledger.transfers())
    rows[0] = {**rows[0], **change}
    only_break(run(ledger, rows), kind)
    [found] = stored(ledger.db)
    assert found.kind == kind and found.transfer_id == rows[0]["reference"]
    assert json.loads(found.fields)[field] == values


def test_an_amount_break_is_provider_minus_ledger_and_lists_every_differing_field(ledger):
    rows = rows_of(ledger.transfers())
    rows[0] = {**rows[0], "amount_minor": 4000, "player_id": "P2"}
    only_break(run(ledger, rows), "AMOUNT_MISMATCH")
    [found] = stored(ledger.db)
    assert found.difference_minor == -1000
    assert set(json.loads(found.fields)) == {"amount", "player"}


def test_a_refunded_transfer_in_the_provider_applied_is_a_status_mismatch(ledger):
    ledger.provider.fail_next(RejectedError("no"))
    refused = ledger.session("P1", "30.00", "2026-12-01 14:00")
    assert refused.status == "failed"
    rows = rows_of(ledger.transfers())
    for row in rows:
        if row["reference"] == refused.transfers[0].id:
            row["status"] = "SUCCESS"  # the provider says it applied the money we gave back
    break_ = only_break(run(ledger, rows), "STATUS_MISMATCH")
    assert break_["l_status"] == "refused" and break_["p_status"] == "SUCCESS"


def test_a_row_the_provider_sent_twice_is_a_duplicate_at_provider(ledger):
    rows = rows_of(ledger.transfers())
    result = run(ledger, rows + [rows[2]])
    only_break(result, "DUPLICATE_AT_PROVIDER")
    [found] = stored(ledger.db)
    assert found.fingerprint.endswith(f"DUPLICATE_AT_PROVIDER:tx:{rows[2]['provider_tx_id']}#2")


def test_an_unreadable_row_is_an_invalid_record_naming_row_column_and_value(ledger):
    invalid = [{"row_number": 7, "column": "amount", "raw_value": "12,5x", "reason": "not a number"}]
    result = run(ledger, rows_of(ledger.transfers()), invalid=invalid)
    only_break(result, "INVALID_RECORD")
    [found] = stored(ledger.db)
    assert "row 7" in found.detail and "amount" in found.detail and "12,5x" in found.detail


def test_a_trailer_that_disagrees_with_the_rows_is_a_control_total_mismatch(ledger):
    rows = rows_of(ledger.transfers())
    total = sum(r["amount_minor"] for r in rows)
    good = TrailerTotals(row_count=4, amount_minor_by_currency={"EUR": total}, row_number=6)
    assert run(ledger, rows, trailer=good).kinds == {}
    bad = TrailerTotals(row_count=5, amount_minor_by_currency={"EUR": total + 1}, row_number=6)
    result = run(ledger, rows, trailer=bad, now=NOW + dt.timedelta(hours=1))
    assert result.kinds == {"CONTROL_TOTAL_MISMATCH": 2}
    assert {d.kind for d in stored(ledger.db, status="open")} == {"CONTROL_TOTAL_MISMATCH"}


def test_a_transfer_in_doubt_on_our_side_is_reported_as_pending_not_as_a_mismatch(ledger):
    ledger.provider.fail_next(OutcomeUnknownError("lost"), apply=True)
    doubtful = ledger.session("P2", "10.00", "2026-12-01 16:00")
    assert doubtful.in_doubt
    rows = rows_of(ledger.transfers())
    for row in rows:
        if row["reference"] == doubtful.transfers[0].id:
            row["status"], row["provider_tx_id"] = "SUCCESS", "px-doubt"
    break_ = only_break(run(ledger, rows), "PENDING_IN_LEDGER")
    assert break_["l_status"] in ("pending", "in_doubt")


def test_a_rerun_is_idempotent_and_keeps_what_finance_wrote(ledger):
    rows = rows_of(ledger.transfers())
    rows[0] = {**rows[0], "amount_minor": 5100}
    first = run(ledger, rows)
    [before] = stored(ledger.db)
    with ledger.db.engine.begin() as connection:
        connection.execute(update(Discrepancy.__table__).values(status="investigating", note="called acme"))
    second = run(ledger, rows, now=NOW + dt.timedelta(hours=2))
    [after] = stored(ledger.db)
    assert second.run_id != first.run_id and after.id == before.id
    assert (after.times_seen, after.status, after.note) == (2, "investigating", "called acme")
    assert second.open_count == 1


def test_a_break_the_corrected_report_no_longer_has_closes_as_cleared(ledger):
    rows = rows_of(ledger.transfers())
    run(ledger, [{**rows[0], "amount_minor": 5100}] + rows[1:])
    result = run(ledger, rows, now=NOW + dt.timedelta(hours=1), salt="corrected")
    assert result.open_count == 0
    [found] = stored(ledger.db)
    assert found.status == "cleared"
    with ledger.db.engine.connect() as connection:
        actions = connection.execute(select(DiscrepancyEvent.__table__.c.action)).scalars().all()
    assert actions == ["recorded", "cleared"]


def test_a_timing_break_across_midnight_clears_itself_on_the_next_days_run(ledger):
    late = ledger.session("P1", "25.00", "2026-12-01 23:50")
    transfer_id = late.transfers[0].id
    rows = rows_of(ledger.transfers())
    today = [r for r in rows if r["reference"] != transfer_id]
    first = run(ledger, today)
    assert first.kinds == {"TIMING_CUTOFF": 1}
    [late_row] = [r for r in rows if r["reference"] == transfer_id]
    tomorrow = [{**late_row, "created_at": at("2026-12-02 00:00:07")}]  # the provider applied it after midnight
    second = run(ledger, tomorrow, day=DAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1))
    assert second.kinds == {} and second.counts["across_cutoff"] == 1
    [found] = stored(ledger.db)
    assert (found.kind, found.status, found.business_date) == ("TIMING_CUTOFF", "cleared", DAY)
    rerun = run(ledger, today, now=NOW + dt.timedelta(days=1, hours=1))  # day D again: already paired on D+1
    assert rerun.kinds == {} and stored(ledger.db)[0].status == "cleared"


def test_the_same_report_delivered_for_two_days_is_flagged(ledger):
    rows = rows_of(ledger.transfers())
    run(ledger, rows)
    second = run(ledger, rows, day=DAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1))
    assert second.kinds["DUPLICATE_FILE"] == 1
    [flag] = stored(ledger.db, kind="DUPLICATE_FILE")
    assert flag.business_date == DAY + dt.timedelta(days=1) and "2026-12-01" in flag.detail


def test_every_run_is_recorded_with_file_hash_profile_counts_and_timings(ledger):
    result = run(ledger, rows_of(ledger.transfers()))
    with ledger.db.engine.connect() as connection:
        [row] = connection.execute(select(ReconciliationRun.__table__)).all()
    assert (row.id, row.outcome, row.file_sha256, row.business_date) == (result.run_id, "succeeded",
                                                                         result.file_sha256, DAY)
    assert json.loads(row.counts)["valid_rows"] == 4 and json.loads(row.profile)["timezone"] == "UTC"
    assert set(json.loads(row.timings)) == {"ingest", "ledger_read", "match_classify"}
    assert len(row.profile_digest) == 64
