"""Regression stories from the second adversarial review of reconciliation (money differences first).

Each story builds the ledger through the real library (wallet, sessions, the in-memory
provider) and hands reconciliation the reports the provider would send, day after day.
"""

from __future__ import annotations

import datetime as dt
import json

import openpyxl
import pyarrow as pa
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cli import cli
from reconcile_support import at
from test_reconcile_export import _cli_env
from test_reconcile_review import NEXT_DAY, open_kinds, run
from test_reconcile_run import CONFIG, DAY, NOW, Ledger, rows_of, stored
from transfer_wallet import discrepancies
from transfer_wallet.config import ProviderConfig
from transfer_wallet.errors import ConfigError, ProviderUnavailableError
from transfer_wallet.models import ReconciliationRun, Transfer
from transfer_wallet.reconcile import store
from transfer_wallet.reconcile.export import export_run
from transfer_wallet.reconcile.ingest import ReportFileError, ingest_report
from transfer_wallet.reconcile.profile import parse_report_format
from transfer_wallet.reconcile.run import reconcile



def test_a_transfer_in_its_own_days_report_and_again_the_next_day_under_the_same_id_is_a_duplicate(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 10:00", "2026-12-01 12:00")
    rows = rows_of(book.transfers())
    assert run(db, rows, DAY, NOW).kinds == {}
    transfer_out = rows[1]
    again = {**transfer_out, "created_at": at("2026-12-02 09:00")}
    result = run(db, [again], NEXT_DAY, NOW + dt.timedelta(days=1))
    assert result.kinds == {"DUPLICATE_AT_PROVIDER": 1}
    assert result.counts["across_cutoff"] == 0
    [found] = stored(db, kind="DUPLICATE_AT_PROVIDER")
    assert (found.transfer_id, found.business_date, found.actual_minor) == (
        transfer_out["reference"], NEXT_DAY, transfer_out["amount_minor"])
    # The first day stays clean on a re-run, and the duplicate stays open on the second.
    assert run(db, rows, DAY, NOW + dt.timedelta(days=1, hours=1), salt="rerun").kinds == {}
    assert open_kinds(db) == [("DUPLICATE_AT_PROVIDER", NEXT_DAY)]


@pytest.mark.parametrize("stored_as", ["packed", "an_older_runs_list"])
def test_the_days_paired_transfers_are_stored_packed_and_an_older_runs_list_still_counts(db, stored_as):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 10:00", "2026-12-01 12:00")
    book.session("P2", "20.00", "2026-12-01 13:00", "2026-12-01 14:00")
    rows = rows_of(book.transfers())
    first = run(db, rows, DAY, NOW)
    runs = ReconciliationRun.__table__
    document = json.loads(db.transaction(lambda c: c.execute(select(runs.c.across_cutoff).where(
        runs.c.id == first.run_id)).scalar_one()))
    assert set(document) == {"across", "paired_z"}
    assert store.unpack_ids(document["paired_z"]) == sorted(row["reference"] for row in rows) and len(rows) == 4
    if stored_as == "an_older_runs_list":
        older = json.dumps({"across": [], "paired": store.unpack_ids(document["paired_z"])})
        db.transaction(lambda c: c.execute(runs.update().where(runs.c.id == first.run_id).values(across_cutoff=older)))
    again = {**rows[1], "created_at": at("2026-12-02 09:00")}
    assert run(db, [again], NEXT_DAY, NOW + dt.timedelta(days=1)).kinds == {"DUPLICATE_AT_PROVIDER": 1}


def test_pack_ids_sorts_and_round_trips_any_text_but_a_newline() -> None:
    for ids in ([], ["b", "a"], ["é-ü", "Z", "z", "a" * 300], pa.array(["x", "w"], type=pa.string())):
        assert store.unpack_ids(store.pack_ids(ids)) == sorted(str(v) for v in ids)


def test_a_transfer_paired_the_next_day_first_and_then_in_its_own_days_report_is_a_duplicate_there(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 10:00", "2026-12-01 12:00")
    rows = rows_of(book.transfers())
    again = {**rows[1], "created_at": at("2026-12-02 09:00")}
    assert run(db, [again], NEXT_DAY, NOW + dt.timedelta(days=1)).counts["across_cutoff"] == 1
    assert run(db, rows, DAY, NOW + dt.timedelta(days=1, hours=1)).kinds == {"DUPLICATE_AT_PROVIDER": 1}


def test_a_transfer_applied_despite_a_503_and_again_by_the_sweep_is_not_cleared_by_the_second_pair(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 09:30")
    book.clock[0] = at("2026-12-01 10:00")
    book.provider.fail_next(ProviderUnavailableError("down"), operations={"transfer_out"})
    with db.engine.connect() as connection:
        session_id = connection.execute(select(Transfer.__table__.c.session_id)).scalar_one()
    book.manager.close_session(session_id, now=book.clock[0])
    transfer_in, transfer_out = rows_of(book.transfers())
    first = {**transfer_out, "provider_tx_id": "px-first", "status": "SUCCESS", "amount_minor": 5000,
             "created_at": at("2026-12-01 10:00")}
    assert run(db, [transfer_in, first], DAY, NOW).kinds == {"PENDING_IN_LEDGER": 1}
    # A pair on another day does not clear a pending break that has a report row: it is no absence.
    assert db.transaction(lambda c: store.clear_timing_breaks(c, "acme", [transfer_out["reference"]], now=NOW,
                                                              other_than=NEXT_DAY)) == 0

    book.clock[0] = at("2026-12-02 09:00")
    book.manager.resolve_in_doubt(now=book.clock[0])
    settled = rows_of(book.transfers())[1]
    assert settled["status"] == "SUCCESS" and settled["provider_tx_id"] != "px-first"
    second = {**settled, "created_at": at("2026-12-02 09:00")}
    assert run(db, [second], NEXT_DAY, NOW + dt.timedelta(days=1)).kinds == {"DUPLICATE_AT_PROVIDER": 1}
    # The first day's pending pair is not an absence: still open until its own day is looked at again.
    assert open_kinds(db) == [("DUPLICATE_AT_PROVIDER", NEXT_DAY), ("PENDING_IN_LEDGER", DAY)]
    rerun = run(db, [transfer_in, first], DAY, NOW + dt.timedelta(days=1, hours=1), salt="rerun")
    assert rerun.kinds == {"PROVIDER_TX_ID_MISMATCH": 1}


def test_a_corrected_file_that_no_longer_has_a_late_transfer_reopens_its_own_days_break(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 23:30", "2026-12-01 23:40")
    transfer_in, transfer_out = rows_of(book.transfers())
    assert run(db, [transfer_in], DAY, NOW).kinds == {"TIMING_CUTOFF": 1}
    late = {**transfer_out, "created_at": at("2026-12-02 00:05")}
    assert run(db, [late], NEXT_DAY, NOW + dt.timedelta(days=1)).counts["across_cutoff"] == 1
    assert open_kinds(db) == []
    corrected = run(db, [], NEXT_DAY, NOW + dt.timedelta(days=1, hours=3), salt="corrected")
    assert corrected.counts["across_cutoff"] == 0
    assert open_kinds(db) == [("TIMING_CUTOFF", DAY)]
    [found] = stored(db, kind="TIMING_CUTOFF")
    assert found.transfer_id == transfer_out["reference"]
    assert run(db, [transfer_in], DAY, NOW + dt.timedelta(days=1, hours=4), salt="rerun").kinds == {"TIMING_CUTOFF": 1}


def test_a_control_character_in_a_report_id_is_written_out_in_every_export(db, tmp_path):
    row = {"provider_tx_id": "px-\x01", "player_id": "P\x019", "direction": "IN", "amount_minor": 1000,
           "created_at": at("2026-12-01 10:00")}
    result = run(db, [row], DAY, NOW)
    paths = export_run(db, result, tmp_path / "out", now=NOW)
    workbook = openpyxl.load_workbook(next((tmp_path / "out").glob("*.xlsx")))
    cells = [str(c.value) for sheet in workbook for line in sheet.iter_rows() for c in line if c.value is not None]
    assert "P\\x019" in cells and not any("\x01" in c for c in cells)
    texts = [p.read_text(encoding="utf-8-sig") for p in (tmp_path / "out").iterdir() if p.suffix in (".csv", ".html")]
    assert texts and all("\x01" not in t for t in texts) and any("P\\x019" in t for t in texts)
    assert paths


def test_an_unreadable_row_resolved_by_finance_reopens_when_the_same_row_number_holds_another_value(db):
    header = "provider_tx_id,reference,player_id,type,amount,currency,status,created_at\n"
    first = (header + "px-1,,P1,TRANSFER_IN,10.00,EUR,FAILED,2026-12-01T10:00:00\n"
             'px-2,,P2,TRANSFER_IN,"12,50",EUR,SUCCESS,2026-12-01T10:05:00\n').encode()
    reconcile(db, CONFIG, DAY, first, now=NOW)
    [found] = stored(db)
    assert found.kind == "INVALID_RECORD" and "12,50" in found.fields
    discrepancies.transition(db, found.id, to_status="resolved", note="checked: 12.50", actor="anna")
    second = (header + "px-1,,P1,TRANSFER_IN,10.00,EUR,FAILED,2026-12-01T10:00:00\n"
              'px-9,,P1,TRANSFER_OUT,"125000,00",EUR,SUCCESS,2026-12-01T11:00:00\n').encode()
    reconcile(db, CONFIG, DAY, second, now=NOW + dt.timedelta(hours=3))
    [found] = stored(db)
    assert found.status == "open" and "125000,00" in found.fields


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31"])
def test_tw_reconcile_of_a_date_outside_the_years_2000_to_2999_is_one_line_and_writes_nothing(db, tmp_path, day):
    url, providers = _cli_env(db, tmp_path)
    report = tmp_path / "acme.csv"
    report.write_text("provider_tx_id,reference,player_id,type,amount,currency,status,created_at\n")
    result = CliRunner().invoke(cli, ["--db", url, "--providers", str(providers), "reconcile", "--provider", "acme",
                                      "--date", day, "--report", str(report)])
    assert result.exit_code == 1
    assert result.stderr == f"error: business date {day} is outside the years 2000-2999\n"
    with db.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ReconciliationRun.__table__)).scalar_one() == 0


FOOTED = ProviderConfig(name="acme", base_url="http://127.0.0.1:1", currency="EUR", keys=(),
                        report=parse_report_format("acme", {"skip_footer_rows": 1}))


def test_a_report_that_comes_without_its_footer_is_refused_not_cut_short(db):
    header = "provider_tx_id,reference,player_id,type,amount,currency,status,created_at\n"
    rows = "px-unknown,,P2,TRANSFER_IN,9999.00,EUR,SUCCESS,2026-12-01T11:00:00\n"
    footed = reconcile(db, FOOTED, DAY, (header + rows + "END OF REPORT\n").encode(), now=NOW)
    assert footed.kinds == {"MISSING_IN_LEDGER": 1}
    with pytest.raises(ReportFileError, match="not the footer"):
        reconcile(db, FOOTED, DAY, (header + rows).encode(), now=NOW + dt.timedelta(hours=1))
    with db.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ReconciliationRun.__table__)).scalar_one() == 1


def test_a_footer_marker_is_configurable_and_never_empty():
    fmt = parse_report_format("acme", {"skip_footer_rows": 2, "footer_marker": "Total de registros"})
    text = ("provider_tx_id,reference,player_id,type,amount,currency,status,created_at\n"
            "px-1,,P1,TRANSFER_IN,1.00,EUR,SUCCESS,2026-12-01T11:00:00\nTotal de registros: 1\ngerado em 2026-12-02\n")
    report = ingest_report(text.encode(), fmt)
    assert report.rows["provider_tx_id"].tolist() == ["px-1"]
    with pytest.raises(ConfigError, match="'footer_marker'"):
        parse_report_format("acme", {"footer_marker": " "})


def test_a_refused_attempt_logged_before_the_applied_one_leaves_nothing_open(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 10:00", "2026-12-01 10:30")
    transfer_in, transfer_out = rows_of(book.transfers())
    refused = {**transfer_out, "provider_tx_id": "px-refused", "status": "FAILED"}
    result = run(db, [transfer_in, refused, transfer_out], DAY, NOW)
    assert result.kinds == {} and result.counts["duplicates"] == 1
    assert result.controls["unexplained_minor"].tolist() == [0] * len(result.controls)


def test_a_refused_retry_logged_after_the_applied_one_is_no_money_difference(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 10:00", "2026-12-01 10:30")
    transfer_in, transfer_out = rows_of(book.transfers())
    retry = {**transfer_out, "provider_tx_id": "px-retry", "status": "FAILED"}
    assert run(db, [transfer_in, transfer_out, retry], DAY, NOW).kinds == {}


def test_an_applied_repeat_under_another_provider_id_is_still_a_duplicate_with_its_amount(db):
    book = Ledger(db)
    book.session("P1", "50.00", "2026-12-01 10:00", "2026-12-01 10:30")
    transfer_in, transfer_out = rows_of(book.transfers())
    again = {**transfer_out, "provider_tx_id": "px-again"}
    assert run(db, [transfer_in, again, transfer_out], DAY, NOW).kinds == {"DUPLICATE_AT_PROVIDER": 1}
    [found] = stored(db)
    assert (found.provider_tx_id, found.actual_minor) == ("px-again", transfer_out["amount_minor"])


HEADER = "provider_tx_id,reference,player_id,type,amount,currency,status,created_at\n"


def test_a_nul_at_the_end_of_an_amount_is_not_an_amount():
    report = ingest_report((HEADER + "px-4,,P1,TRANSFER_IN,13.00\x00,EUR,SUCCESS,2026-12-01T10:00:00\n").encode(),
                           parse_report_format("acme", {}))
    assert report.rows.empty
    assert report.invalid[["row_number", "column", "reason"]].values.tolist() == [[2, "amount", "not an amount"]]


def test_a_row_with_too_many_fields_after_a_quoted_line_break_shows_its_own_text():
    text = (HEADER + 'px-3,,"P\n1",TRANSFER_IN,12.00,EUR,SUCCESS,2026-12-01T10:00:00\n'
            "px-4,,P1,TRANSFER_IN,13.00,EUR,SUCCESS,2026-12-01T10:00:00\n"
            "px-5,,P1,TRANSFER_IN,14.00,EUR,SUCCESS,2026-12-01T10:00:00,extra\n")
    report = ingest_report(text.encode(), parse_report_format("acme", {}))
    [bad] = report.invalid.to_dict("records")
    assert bad["row_number"] == 4 and bad["raw_value"].startswith("px-5,") and bad["raw_value"].endswith(",extra")


@pytest.mark.parametrize(("line", "column"), [
    ("px-4,,P1\x00,TRANSFER_IN,13.00,EUR,SUCCESS,2026-12-01T10:00:00", "player_id"),
    ("px-4,,P1,TRANSFER_IN,13\x00.00,EUR,SUCCESS,2026-12-01T10:00:00", "amount"),
    ("px-4,,P1,TRANSFER_IN,13.00,EUR,SUCCESS,2026-12-01T10:00:00\x00", "created_at"),
])
def test_a_nul_anywhere_in_a_cell_makes_that_cell_invalid_whatever_the_csv_parser_does_with_it(line, column):
    report = ingest_report((HEADER + line + "\n").encode(), parse_report_format("acme", {}))
    assert report.rows.empty
    assert report.invalid["column"].tolist() == [column]
