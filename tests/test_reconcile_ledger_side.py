"""The ledger side of a reconciliation read from a real database: which transfers a business day holds.

Every test runs on SQLite and PostgreSQL (the ``db`` fixture). Transfers are written
straight into the table with literal times, then read as ``reconcile`` reads them:
``read_ledger_side`` inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from transfer_wallet import dbapi
from transfer_wallet.dbapi import bound_time, run_on
from transfer_wallet.models import GameSession, Player, Transfer, table_of
from transfer_wallet.reconcile import ledger_side
from transfer_wallet.reconcile.ledger_side import LEDGER_DTYPES, read_ledger_side
from transfer_wallet.sessions.state import SETTLED_LOCALLY

UTC = dt.timezone.utc
DAY = dt.date(2026, 12, 1)
MIDNIGHT = dt.datetime(2026, 12, 1, tzinfo=UTC)
TICK = dt.timedelta(microseconds=1)
HOUR = dt.timedelta(hours=1)


def transfer(transfer_id: str, created_at: dt.datetime, *, provider: str = "acme", amount: int | None = 700,
             provider_tx_id: str | None = "px", status: str = "completed", direction: str = "IN") -> dict:
    return dict(id=transfer_id, session_id="s-1", player_id="P1", provider=provider, direction=direction,
                status=status, wallet_currency="EUR", amount_minor=amount, game_currency="EUR",
                game_amount_minor=amount, provider_tx_id=provider_tx_id, created_at=created_at,
                updated_at=created_at)


def add(connection, *transfers: dict) -> None:
    if connection.execute(table_of(Player).select()).first() is None:
        connection.execute(table_of(Player).insert().values(id="P1", currency="EUR", created_at=MIDNIGHT))
        connection.execute(table_of(GameSession).insert().values(
            id="s-1", player_id="P1", provider="acme", status="closed", wallet_currency="EUR", game_currency="EUR",
            amount_in_minor=1, game_amount_in_minor=1, open_key="open-s-1", open_request_hash="0" * 64,
            idle_timeout_s=900, max_session_s=3600, opened_at=MIDNIGHT, last_activity_at=MIDNIGHT,
            deadline_at=MIDNIGHT))
    connection.execute(table_of(Transfer).insert(), list(transfers))


def store(db, *transfers: dict) -> None:
    db.transaction(lambda connection: add(connection, *transfers))


def read(db, day: dt.date = DAY, timezone: str = "UTC", **options) -> pd.DataFrame:
    return db.transaction(lambda c: read_ledger_side(c, "acme", day, timezone, **options), readonly=True).rows


def window_of(frame: pd.DataFrame) -> dict[str, bool]:
    return dict(zip(frame["transfer_id"], frame["in_window"]))


def test_the_day_is_start_inclusive_end_exclusive_and_the_margins_widen_it_to_the_microsecond(db):
    start, end, margin = MIDNIGHT, MIDNIGHT + dt.timedelta(days=1), HOUR
    store(db, transfer("before-margin", start - margin - TICK), transfer("margin-start", start - margin),
          transfer("last-of-margin", start - TICK), transfer("first-of-day", start),
          transfer("last-of-day", end - TICK), transfer("next-day", end),
          transfer("end-of-margin", end + margin - TICK), transfer("after-margin", end + margin))
    assert window_of(read(db, margin_s=3600)) == {
        "margin-start": False, "last-of-margin": False, "first-of-day": True, "last-of-day": True,
        "next-day": False, "end-of-margin": False}
    assert window_of(read(db, margin_s=0)) == {"first-of-day": True, "last-of-day": True}


def test_created_at_comes_back_as_the_exact_utc_moment(db):
    moment = dt.datetime(2026, 12, 1, 13, 14, 15, 123456, tzinfo=UTC)
    store(db, transfer("t1", moment))
    assert read(db)["created_at"].tolist() == [pd.Timestamp(moment)]


def test_a_dst_day_in_the_report_timezone_is_23_or_25_hours_of_local_time(db):
    # Malta: CET (UTC+1) in winter, CEST (UTC+2) in summer. 29 March 2026 has 23 hours, 25 October 25.
    store(db, transfer("spring-first", dt.datetime(2026, 3, 28, 23, 0, tzinfo=UTC)),   # 00:00 CET
          transfer("spring-last", dt.datetime(2026, 3, 29, 21, 59, tzinfo=UTC)),        # 23:59 CEST
          transfer("spring-next", dt.datetime(2026, 3, 29, 22, 0, tzinfo=UTC)),         # 00:00 CEST, 30 March
          transfer("autumn-before", dt.datetime(2026, 10, 24, 21, 59, tzinfo=UTC)),     # 23:59 CEST, 24 Oct
          transfer("autumn-first", dt.datetime(2026, 10, 24, 22, 0, tzinfo=UTC)),       # 00:00 CEST
          transfer("autumn-last", dt.datetime(2026, 10, 25, 22, 59, tzinfo=UTC)),       # 23:59 CET
          transfer("autumn-next", dt.datetime(2026, 10, 25, 23, 0, tzinfo=UTC)))        # 00:00 CET, 26 Oct
    spring = read(db, dt.date(2026, 3, 29), "Europe/Malta", margin_s=0)
    autumn = read(db, dt.date(2026, 10, 25), "Europe/Malta", margin_s=0)
    assert sorted(spring["transfer_id"]) == ["spring-first", "spring-last"]
    assert sorted(autumn["transfer_id"]) == ["autumn-first", "autumn-last"]


def test_a_transfer_out_settled_here_is_not_read_but_one_without_provider_answer_is(db):
    store(db, transfer("settled-here", MIDNIGHT + HOUR, provider_tx_id=SETTLED_LOCALLY, amount=0, direction="OUT"),
          transfer("in-doubt", MIDNIGHT + HOUR, provider_tx_id=None, status="in_doubt"),
          transfer("answered", MIDNIGHT + HOUR, provider_tx_id="px-9"),
          transfer("other-provider", MIDNIGHT + HOUR, provider="zeta"))
    frame = read(db)
    assert sorted(frame["transfer_id"]) == ["answered", "in-doubt"]
    assert frame.set_index("transfer_id").loc["in-doubt", "provider_tx_id"] is pd.NA


def test_references_created_outside_the_window_are_found_by_id_across_batches(db, monkeypatch):
    monkeypatch.setattr(ledger_side, "REFERENCE_BATCH", 2)
    last_week = MIDNIGHT - dt.timedelta(days=7)
    late = [transfer(f"late-{n}", last_week + n * HOUR) for n in range(5)]
    store(db, *late, transfer("in-day", MIDNIGHT + HOUR), transfer("late-settled-here", last_week,
                                                                   provider_tx_id=SETTLED_LOCALLY),
          transfer("late-other-provider", last_week, provider="zeta"))
    references = pd.Series(["late-4", "in-day", None, "late-0", "late-2", "late-1", "late-3", "late-0",
                            "unknown", "late-settled-here", "late-other-provider"], dtype="string")
    frame = read(db, references=references)
    assert sorted(frame["transfer_id"]) == ["in-day", "late-0", "late-1", "late-2", "late-3", "late-4"]
    assert window_of(frame) == {"in-day": True, **{f"late-{n}": False for n in range(5)}}


def test_an_amount_above_2_to_the_53_is_read_exactly_next_to_a_missing_amount(db):
    big = 2**53 + 1
    store(db, transfer("big", MIDNIGHT + HOUR, amount=big),
          transfer("withdraw-all", MIDNIGHT + 2 * HOUR, amount=None, direction="OUT", status="in_doubt"))
    amounts = read(db).set_index("transfer_id")["amount_minor"]
    assert amounts["big"] == big and int(amounts["big"]) == big
    assert amounts["withdraw-all"] is pd.NA


@pytest.mark.parametrize("chunked", [True, False], ids=["streamed-in-chunks", "fetchmany"])
def test_a_day_larger_than_one_fetch_batch_is_read_whole_in_order_streamed_or_fetched(db, monkeypatch, chunked):
    # PostgreSQL streams in chunks when libpq can (17+), else fetches; SQLite always fetches.
    monkeypatch.setattr(ledger_side, "FETCH_BATCH", 2)
    if not chunked:
        monkeypatch.setattr(dbapi, "_streams_in_chunks", lambda cursor: False)
    last_week = MIDNIGHT - dt.timedelta(days=7)
    store(db, *[transfer(f"t{n}", MIDNIGHT + n * HOUR, amount=2**53 + n) for n in range(5)],
          transfer("t5", MIDNIGHT + 5 * HOUR, amount=None, provider_tx_id=None, status="in_doubt"),
          *[transfer(f"late-{n}", last_week + n * HOUR) for n in range(3)])
    frame = read(db, references=["t1", "late-0", "late-1", "late-2"])
    assert list(frame["transfer_id"]) == [f"t{n}" for n in range(6)] + ["late-0", "late-1", "late-2"]
    assert frame["amount_minor"].tolist()[:6] == [2**53 + n for n in range(5)] + [pd.NA]
    assert frame["in_window"].tolist() == [True] * 6 + [False] * 3


@pytest.mark.parametrize("with_rows", [True, False], ids=["rows", "empty"])
def test_the_frame_has_the_documented_dtypes_with_rows_or_without(db, with_rows):
    if with_rows:
        store(db, transfer("t1", MIDNIGHT + HOUR), transfer("t2", MIDNIGHT + 2 * HOUR, amount=None,
                                                            provider_tx_id=None))
    frame = read(db, references=["t9"])
    assert list(frame.columns) == list(LEDGER_DTYPES)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == LEDGER_DTYPES
    assert len(frame) == (2 if with_rows else 0) and isinstance(frame.index, pd.RangeIndex)


def test_the_read_sees_the_callers_own_uncommitted_transfers(db):
    def insert_then_read(connection) -> list[str]:
        add(connection, transfer("t-uncommitted", MIDNIGHT + HOUR))
        return list(read_ledger_side(connection, "acme", DAY, "UTC").rows["transfer_id"])

    assert db.transaction(insert_then_read) == ["t-uncommitted"]



@pytest.mark.parametrize("moment", [
    dt.datetime(2026, 12, 1, 0, 0, tzinfo=UTC),
    dt.datetime(2026, 12, 1, 1, 30, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.datetime(2026, 3, 29, 3, 0, tzinfo=ZoneInfo("Europe/Malta")),
])
def test_on_sqlite_a_window_bound_is_the_very_text_sqlalchemy_stored_for_that_moment(sqlite_db, moment):
    def stored_and_bound(connection) -> tuple[str, str]:
        add(connection, transfer("t1", moment))
        return run_on(connection, lambda cursor: (
            cursor.execute("SELECT created_at FROM transfers").fetchone()[0], bound_time(cursor, moment)))

    stored, bound = sqlite_db.transaction(stored_and_bound)
    assert bound == stored
