"""Property: any transfers, written by the simulator in any valid profile, read back as the same canonical rows."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transfer_wallet.money import Money, currency
from transfer_wallet.providers.protocol import Direction, TransferState
from transfer_wallet.simulator.report import render_report
from transfer_wallet.simulator.store import StoredTransfer
from transfer_wallet.reconcile.frame import CANONICAL_COLUMNS, CANONICAL_DTYPES
from transfer_wallet.reconcile.ingest import ingest_report
from transfer_wallet.reconcile.profile import ReportFormat, parse_report_format

CURRENCIES = ("EUR", "JPY", "KWD", "BRL")
ZONES = ("UTC", "America/Sao_Paulo", "Europe/Malta", "Asia/Kolkata")
DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%Y%m%d%H%M%S", "%Y-%m-%d %H:%M:%S%z")
IDS = st.text(alphabet="abcXYZ019-_=+@ ,;|\"'é", min_size=1, max_size=10).filter(lambda s: s.strip() not in ("", "TOTAL"))
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


@st.composite
def profiles(draw: st.DrawFn) -> ReportFormat:
    delimiter = draw(st.sampled_from([",", ";", "|", "\t"]))
    decimal = draw(st.sampled_from([s for s in ".," if s != delimiter]))
    thousands = draw(st.sampled_from([None, *[s for s in ".,' " if s not in (delimiter, decimal)]]))
    raw: dict = {
        "delimiter": delimiter, "decimal_separator": decimal, "amount_scale": draw(st.sampled_from([1, 10, 100, 1000])),
        "timezone": draw(st.sampled_from(ZONES)), "date_format": draw(st.sampled_from(DATE_FORMATS)),
        "encoding": draw(st.sampled_from(["utf-8", "latin-1", "utf-16"])), "skip_footer_rows": draw(st.integers(0, 2)),
        "columns": {"provider_tx_id": "Tx Id", "amount": "Valor (R$ ç)"},
        "values": {"SUCCESS": draw(st.sampled_from(["OK", ["OK", "DONE"]])), "TRANSFER_OUT": ["W", "OUT"]},
    }
    if thousands:
        raw["thousands_separator"] = thousands
    if raw["encoding"] == "utf-8":
        raw["bom"] = draw(st.booleans())
    for optional in draw(st.sets(st.sampled_from(["provider_session_id", "provider_round_id"]))):
        raw["columns"][optional] = optional.upper()
    if draw(st.booleans()):
        raw["trailer"] = {"marker": "TOTAL", "count_field": draw(st.sampled_from(["reference", "player_id"]))}
    return parse_report_format("random", raw)


def _unambiguous(moment: dt.datetime, zone: str) -> dt.datetime:
    """Move a time out of the repeated local hour (read back as the earliest instant, by design)."""
    local = moment.astimezone(ZoneInfo(zone))
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        return moment + dt.timedelta(hours=2)
    return moment


@st.composite
def transfers(draw: st.DrawFn) -> list[StoredTransfer]:
    count = draw(st.integers(0, 12))
    tx_ids = draw(st.lists(IDS, min_size=count, max_size=count, unique=True))
    rows = []
    for index, tx_id in enumerate(tx_ids):
        unit = currency(draw(st.sampled_from(CURRENCIES)))
        rows.append(StoredTransfer(
            transfer_id=draw(IDS), provider_tx_id=tx_id, player_id=draw(IDS),
            direction=draw(st.sampled_from(list(Direction))), fingerprint=f"f{index}",
            amount=Money(draw(st.integers(1, 10**12)), unit),
            state=draw(st.sampled_from([TransferState.APPLIED, TransferState.FAILED])), error_code=None,
            balance_after=None, created_at=START + dt.timedelta(seconds=draw(st.integers(0, 3 * 366 * 86_400))),
        ))
    return rows


def expected_frame(rows: list[StoredTransfer], fmt: ReportFormat, sessions: dict[str, str], rounds: dict[str, str]) -> pd.DataFrame:
    mapped = set(fmt.mapped_fields())
    frame = pd.DataFrame({
        "row_number": [i + 2 for i in range(len(rows))],
        "provider_tx_id": [t.provider_tx_id for t in rows],
        "reference": [t.transfer_id for t in rows],
        "player_id": [t.player_id for t in rows],
        "direction": [t.direction.value for t in rows],
        "amount_minor": [t.amount.amount_minor for t in rows],
        "currency": [t.amount.currency.code for t in rows],
        "status": ["SUCCESS" if t.state is TransferState.APPLIED else "FAILED" for t in rows],
        "created_at": [pd.Timestamp(t.created_at) for t in rows],
        "provider_session_id": [sessions[t.transfer_id] if "provider_session_id" in mapped else None for t in rows],
        "provider_round_id": [rounds[t.transfer_id] if "provider_round_id" in mapped else None for t in rows],
    }, columns=list(CANONICAL_COLUMNS))
    return frame.astype(CANONICAL_DTYPES)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=profiles(), rows=transfers(), session_ids=IDS, round_ids=IDS)
def test_a_rendered_report_reads_back_as_exactly_the_same_canonical_rows(
    fmt: ReportFormat, rows: list[StoredTransfer], session_ids: str, round_ids: str,
) -> None:
    rows = [t.__class__(**{**{s: getattr(t, s) for s in t.__slots__},  # type: ignore[attr-defined]
                           "created_at": _unambiguous(t.created_at, fmt.timezone)}) for t in rows]
    sessions = {t.transfer_id: f"{session_ids}-{i}" for i, t in enumerate(rows)}
    rounds = {t.transfer_id: f"{round_ids}-{i}" for i, t in enumerate(rows)}
    body = render_report(rows, fmt, session_ids=sessions, round_ids=rounds)
    report = ingest_report(body, fmt)
    assert report.invalid.empty, report.invalid.to_dict("records")
    pd.testing.assert_frame_equal(report.rows, expected_frame(rows, fmt, sessions, rounds))
    assert report.data_rows == len(rows)
    if fmt.trailer is not None:
        assert report.trailer is not None and report.trailer.row_count == len(rows)
        totals: dict[str, int] = {}
        for t in rows:
            totals[t.amount.currency.code] = totals.get(t.amount.currency.code, 0) + t.amount.amount_minor
        assert report.trailer.amount_minor_by_currency == totals
