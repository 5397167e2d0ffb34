"""Exports and the ``tw reconcile`` command: what finance opens in the morning.

The CSV is read back with the csv module (BOM, exact decimals, neutralised formulas),
the workbook with openpyxl, the HTML checked for being self-contained.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal

import openpyxl
import pytest
from click.testing import CliRunner

from cli import cli
from reconcile_support import at, report_file
from transfer_wallet.config import ProviderConfig, ReportFormat
from transfer_wallet.reconcile.export import DISCREPANCY_COLUMNS, export_run
from transfer_wallet.reconcile.export.csv_files import cell, cell_text, cell_value, neutralise
from transfer_wallet.reconcile.run import reconcile
from transfer_wallet.wallet import Wallet

DAY = dt.date(2026, 12, 1)
NOW = at("2026-12-02 06:00")
CONFIG = ProviderConfig(name="acme", base_url="http://127.0.0.1:1", currency="EUR", keys=(),
                        report=ReportFormat(columns={}, values={}, timezone="UTC"))
FORMULA_PLAYER = "=HYPERLINK(\"http://x\")"


def provider_only_rows() -> list[dict]:
    """A report whose every row is unknown to the (empty) ledger: one MISSING_IN_LEDGER each."""
    return [
        dict(provider_tx_id="px-1", player_id=FORMULA_PLAYER, direction="IN", amount_minor=1050,
             created_at=at("2026-12-01 10:00")),
        dict(provider_tx_id="px-2", player_id="P2", direction="OUT", amount_minor=123456789,
             created_at=at("2026-12-01 11:00")),
        dict(provider_tx_id="px-3", player_id="P3", direction="IN", amount_minor=700, currency="JPY",
             created_at=at("2026-12-01 12:00")),
    ]


@pytest.fixture
def exported(db, tmp_path):
    result = reconcile(db, CONFIG, DAY, report_file(provider_only_rows()), now=NOW)
    export_run(db, result, tmp_path / "out", now=NOW + dt.timedelta(days=3))
    return tmp_path / "out"


def test_the_discrepancy_csv_has_a_bom_the_fixed_columns_exact_amounts_and_no_formula(exported):
    raw = (exported / "discrepancies.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with (exported / "discrepancies.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == DISCREPANCY_COLUMNS
    assert [r["amount_provider"] for r in rows] == ["1234567.89", "700", "10.50"]  # largest first; JPY has no decimals
    assert {r["type"] for r in rows} == {"MISSING_IN_LEDGER"}
    assert rows[2]["player_id"] == "'" + FORMULA_PLAYER
    assert rows[2]["at_provider"] == "2026-12-01T10:00:00Z" and rows[2]["age_days"] == "3"
    assert rows[0]["amount_diff"] == "1234567.89" and rows[0]["workflow_status"] == "open"


def test_the_summary_csv_totals_by_type_and_currency_and_shows_the_control_totals(exported):
    with (exported / "summary.csv").open(encoding="utf-8-sig", newline="") as handle:
        lines = list(csv.reader(handle))
    header, eur, jpy = lines[0], dict(zip(lines[0], lines[1])), dict(zip(lines[0], lines[2]))
    assert header[:3] == ["type", "currency", "count"]
    assert (eur["currency"], eur["count"], eur["sum_abs_diff"]) == ("EUR", "2", "1234578.39")
    assert (jpy["currency"], jpy["sum_abs_diff"]) == ("JPY", "700")
    assert any(line and line[0] == "control_totals" for line in lines)


def test_the_workbook_opens_with_numeric_amounts_a_frozen_header_and_filters(exported):
    book = openpyxl.load_workbook(exported / "reconciliation.xlsx")
    assert book.sheetnames == ["Summary", "Discrepancies", "Control totals"]
    sheet = book["Discrepancies"]
    header = [c.value for c in sheet[1]]
    assert tuple(header) == DISCREPANCY_COLUMNS
    provider = sheet.cell(row=2, column=header.index("amount_provider") + 1)
    assert provider.value == Decimal("1234567.89") or provider.value == pytest.approx(1234567.89)
    assert provider.number_format == "0.00"
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:")
    players = [sheet.cell(row=r, column=header.index("player_id") + 1).value for r in range(2, 5)]
    assert "'" + FORMULA_PLAYER in players and all(p.startswith(("'", "P")) for p in players)


def test_the_workbook_holds_the_csv_cells_with_amounts_as_numbers_in_their_currency_format(exported):
    with (exported / "discrepancies.csv").open(encoding="utf-8-sig", newline="") as handle:
        lines = list(csv.reader(handle))
    book = openpyxl.load_workbook(exported / "reconciliation.xlsx")
    sheet = book["Discrepancies"]
    cells = [list(line) for line in sheet.iter_rows()]
    assert [c.value for c in cells[0]] == lines[0] and len(cells) == len(lines) == 4
    amounts = {"amount_ledger", "amount_provider", "amount_diff"}
    for text_line, cell_line in zip(lines[1:], cells[1:]):
        row = dict(zip(lines[0], text_line))
        for column, text, cell in zip(lines[0], text_line, cell_line):
            assert cell.data_type != "f"  # nothing runs as a formula
            if column in amounts and text:
                assert Decimal(str(cell.value)) == Decimal(text)
                assert cell.number_format == ("0" if row["currency"] == "JPY" else "0.00")
            elif text == "":
                assert cell.value is None
            else:
                assert str(cell.value) == text
    summary = {row[1].value: row for row in book["Summary"].iter_rows(min_row=2)}
    assert summary["JPY"][4].value == 700 and summary["JPY"][4].number_format == "0"
    controls = list(book["Control totals"].iter_rows(min_row=2, values_only=True))
    assert controls and all(isinstance(v, int) for v in controls[0][2:])


@pytest.mark.parametrize("value, text", [(None, ""), (Decimal("-1.50"), "-1.50"), (7, "7"), (True, "1"),
                                         (dt.date(2026, 12, 1), "2026-12-01"), ("-2", "'-2"),
                                         (dt.datetime(2026, 12, 1, 11, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                                          "2026-12-01T10:00:00Z"), ("P\x01", "P\\x01")])
def test_a_csv_cell_is_the_text_of_the_value_the_workbook_gets(value, text):
    assert cell(value) == cell_text(cell_value(value)) == text


def test_the_html_page_is_self_contained_with_both_charts(exported):
    page = (exported / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and "MISSING_IN_LEDGER" in page
    assert "src=" not in page and "<link" not in page and "<script" not in page
    assert "3 discrepancies open" in page


@pytest.mark.parametrize("text, safe", [("=1+1", "'=1+1"), ("+3", "'+3"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
                                        ("\tx", "'\tx"), ("\rx", "'\rx"), ("P1", "P1"), ("a=b", "a=b")])
def test_text_a_spreadsheet_would_run_is_neutralised(text, safe):
    assert neutralise(text) == safe


# -- the command ---------------------------------------------------------------------------------

def _cli_env(db, tmp_path):
    url = db.engine.url.render_as_string(hide_password=False)
    providers = tmp_path / "providers.toml"
    providers.write_text('[providers.acme]\nbase_url = "http://127.0.0.1:1"\ncurrency = "EUR"\n')
    return url, providers


def _canonical_csv(path, rows: list[str]) -> None:
    path.write_text("provider_tx_id,reference,player_id,type,amount,currency,status,created_at\n" + "".join(
        r + "\n" for r in rows), encoding="utf-8")


def test_tw_reconcile_exits_3_with_open_discrepancies_and_writes_the_files(db, tmp_path):
    url, providers = _cli_env(db, tmp_path)
    Wallet(db).create_player("P1", "EUR")
    report = tmp_path / "acme.csv"
    _canonical_csv(report, ["px-1,,P1,TRANSFER_IN,10.00,EUR,SUCCESS,2026-12-01T10:00:00",
                            "px-2,,P1,TRANSFER_IN,1O.00,EUR,SUCCESS,2026-12-01T10:05:00"])
    args = ["--db", url, "--providers", str(providers), "--json", "reconcile", "--provider", "acme",
            "--date", "2026-12-01", "--report", str(report), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert document["discrepancies_by_type"] == {"INVALID_RECORD": 1, "MISSING_IN_LEDGER": 1}
    assert document["open"] == 2 and len(document["files"]) == 4
    assert (tmp_path / "out" / "report.html").exists()


def test_tw_reconcile_of_an_agreeing_empty_day_exits_0(db, tmp_path):
    url, providers = _cli_env(db, tmp_path)
    report = tmp_path / "acme.csv"
    _canonical_csv(report, [])
    result = CliRunner().invoke(cli, ["--db", url, "--providers", str(providers), "reconcile", "--provider", "acme",
                                      "--date", "2026-12-01", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "0 open" in result.output


def test_tw_reconcile_of_an_unreadable_file_is_one_line_and_writes_nothing(db, tmp_path):
    url, providers = _cli_env(db, tmp_path)
    report = tmp_path / "acme.csv"
    report.write_text("tx,who\n1,2\n")
    result = CliRunner().invoke(cli, ["--db", url, "--providers", str(providers), "reconcile", "--provider", "acme",
                                      "--date", "2026-12-01", "--report", str(report)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    from sqlalchemy import func, select

    from transfer_wallet.models import ReconciliationRun
    with db.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ReconciliationRun.__table__)).scalar_one() == 0


def test_tw_reconcile_rejects_a_malformed_date_as_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["reconcile", "--provider", "acme", "--date", "01/12/2026"])
    assert result.exit_code == 2


def test_a_terminal_sees_one_progress_step_per_stage_and_a_pipe_sees_none(db, tmp_path):
    import io

    from rich.console import Console

    from commands.reconcile import progress_console, stage_progress
    from transfer_wallet.reconcile.run import STAGES

    seen: list[str] = []
    reconcile(db, CONFIG, DAY, report_file(provider_only_rows()), now=NOW, progress=seen.append)
    assert tuple(seen) == STAGES
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with stage_progress(console, 2) as step:
        step("ingest")
        console.print("between")
        step("exports")
    assert "reading the report" in screen.getvalue()
    assert progress_console(tmp_path / "report.csv") is None  # under pytest stderr is not a terminal
