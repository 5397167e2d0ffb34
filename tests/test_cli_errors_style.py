"""Errors in one style and JSON that scripts can rely on, as an operator meets them at the terminal.

Every error is one ``error: ...`` line on stderr: usage errors exit 2, operational
errors exit 1. A read command never creates the SQLite file it was pointed at; a
command that needs providers names a missing providers file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from cli import cli
from transfer_wallet.discrepancies import Finding, record
from transfer_wallet.wallet import Wallet

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PROVIDERS = ROOT / "sample_data" / "providers.toml"


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False, prog_name="tw")


def url_of(db) -> str:  # type: ignore[no-untyped-def]
    return str(db.engine.url.render_as_string(hide_password=False))


def assert_one_error_line(result, code: int) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return str(lines[0])


def test_tw_alone_prints_its_help_on_stdout_and_exits_0() -> None:
    result = invoke()
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: tw [OPTIONS] COMMAND") and "wallet" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(("args", "names"), [
    (["--bogus"], "--bogus"),
    (["wallet", "balance", "P1", "--bogus"], "--bogus"),
    (["session", "list", "--status", "sleeping"], "'sleeping' is not one of"),
    (["player", "list", "--limit", "0"], "0 is not in the range"),
    (["wallet", "balance"], "Missing argument 'PLAYER_ID'"),
    (["walet"], "No such command 'walet'"),
])
def test_a_usage_error_is_one_line_exit_2_that_says_where_help_is(tmp_path: Path, args: list[str], names: str) -> None:
    database = tmp_path / "tw.db"
    line = assert_one_error_line(invoke("--db", f"sqlite:///{database}", *args), 2)
    assert names in line and "--help" in line
    assert not database.exists()


@pytest.mark.parametrize("args", [
    ["wallet", "balance", "P1"], ["player", "list"], ["session", "list"], ["session", "show", "s1"],
    ["ledger", "check"], ["db", "status"], ["fx", "show"], ["discrepancy", "list"],
])
def test_a_read_command_against_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    database = tmp_path / "nowhere.db"
    line = assert_one_error_line(invoke("--db", f"sqlite:///{database}", *args), 1)
    assert line == f"error: database file '{database}' does not exist; run `tw db upgrade` first to create it"
    assert list(tmp_path.iterdir()) == []  # no file, no -wal, no -shm


def test_a_write_command_against_a_missing_sqlite_file_creates_nothing_either(tmp_path: Path) -> None:
    database = tmp_path / "nowhere.db"
    assert_one_error_line(invoke("--db", f"sqlite:///{database}", "wallet", "deposit", "P1", "10.00"), 1)
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_still_creates_a_fresh_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    result = invoke("--db", f"sqlite:///{database}", "--json", "db", "upgrade")
    assert result.exit_code == 0 and database.exists()
    assert json.loads(invoke("--db", f"sqlite:///{database}", "--json", "db", "status").stdout)["up_to_date"] is True


def test_a_named_providers_file_that_does_not_exist_is_named_as_missing(tmp_path: Path) -> None:
    missing = tmp_path / "x.toml"
    line = assert_one_error_line(invoke("--providers", str(missing), "provider", "list"), 1)
    assert line == f"error: providers file '{missing}' not found"


def test_the_default_providers_file_missing_is_an_error_not_an_empty_list(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TW_PROVIDERS_FILE", raising=False)
    for args in (["provider", "list"], ["provider", "keys"], ["--json", "provider", "list"]):
        assert assert_one_error_line(invoke(*args), 1) == "error: providers file 'providers.toml' not found"


def test_opening_a_session_without_a_providers_file_moves_no_money(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "20.00", reference="dep-1")
    missing = tmp_path / "gone.toml"
    result = invoke("--db", url_of(db), "--providers", str(missing), "session", "open", "P1", "--provider", "acme",
                    "--amount", "5.00")
    assert assert_one_error_line(result, 1) == f"error: providers file '{missing}' not found"
    balance = wallet.balance("P1").as_dict()
    assert (balance["available"], balance["locked"]) == ("20.00", "0.00")


def test_ledger_check_json_gives_totals_and_findings_in_major_units(db) -> None:  # type: ignore[no-untyped-def]
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "5.00", reference="d1")
    clean = json.loads(invoke("--db", url_of(db), "--json", "ledger", "check").stdout)
    assert clean["clean"] is True and clean["totals"] == {"EUR": "0.00"} and "totals_minor" not in clean
    with db.engine.begin() as connection:  # a bug that bypassed the ledger
        connection.execute(text("UPDATE accounts SET balance_minor = 700 WHERE code = 'player:P1:main'"))

    result = invoke("--db", url_of(db), "--json", "ledger", "check")

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["findings"] == [
        {"check": "cached_balance", "detail": "player:P1:main caches 7.00 EUR but its postings sum to 5.00 EUR"}]


def test_provider_list_json_gives_the_keys_as_an_array() -> None:
    result = invoke("--providers", str(SAMPLE_PROVIDERS), "--json", "provider", "list")
    providers = {p["name"]: p for p in json.loads(result.stdout)["providers"]}
    assert providers["acme"]["keys"] == ["acme-2026-09", "acme-2026-11"]
    table = invoke("--providers", str(SAMPLE_PROVIDERS), "provider", "list").stdout
    assert "acme-2026-09 acme-2026-11" in table


def test_a_discrepancy_gives_each_amount_once_as_a_decimal_string(db) -> None:  # type: ignore[no-untyped-def]
    finding = Finding(
        kind="AMOUNT_MISMATCH", source="reconcile", fingerprint="reconcile:acme:2026-11-23:AMOUNT_MISMATCH:t-1",
        provider="acme", business_date=dt.date(2026, 11, 23), transfer_id="t-1", provider_tx_id="p-t-1",
        player_id="P1", currency="KWD", expected_minor=10_005, actual_minor=10_000, difference_minor=-5,
        fields={}, detail="provider reports 10.000, ledger 10.005",
    )
    found_id = db.transaction(lambda c: record(c, finding, now=dt.datetime(2026, 11, 24, 7, tzinfo=dt.timezone.utc)))
    for args in (["discrepancy", "list"], ["discrepancy", "show", str(found_id)]):
        document = json.loads(invoke("--db", url_of(db), "--json", *args).stdout)
        item = document["discrepancies"][0] if "discrepancies" in document else document
        assert (item["expected"], item["actual"], item["difference"]) == ("10.005", "10.000", "-0.005")
        assert not [key for key in item if key.endswith("_minor")]


def test_errors_stay_one_line_in_a_real_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "cli", "--db", f"sqlite:///{tmp_path / 'a.db'}", "wallet",
                             "balance", "P1", "--nope"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ}, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: No such option '--nope' (see 'tw wallet balance --help')\n"


def test_a_session_length_limit_is_in_seconds_under_an_s_name(db) -> None:  # type: ignore[no-untyped-def]
    Wallet(db).create_player("P1", "EUR")
    changed = json.loads(invoke("--db", url_of(db), "--json", "limits", "set", "P1", "--session-length", "2h",
                                "--loss-week", "200.00").stdout)
    by_kind = {c["kind"]: c for c in changed["changes"]}
    assert (by_kind["session_length"]["old_value_s"], by_kind["session_length"]["new_value_s"]) == (None, 7200)
    assert by_kind["loss_week"]["new_value"] == "200.00" and "new_value_s" not in by_kind["loss_week"]
    later = json.loads(invoke("--db", url_of(db), "--json", "limits", "set", "P1", "--session-length", "3h").stdout)
    assert later["changes"][0]["new_value_s"] == 10_800 and later["changes"][0]["immediate"] is False
    shown = json.loads(invoke("--db", url_of(db), "--json", "limits", "show", "P1").stdout)
    assert shown["limits"]["session_length_s"] == 7200 and "session_length" not in shown["limits"]
    assert shown["pending"] == [{"kind": "session_length", "value_s": 10_800,
                                 "effective_from": later["changes"][0]["effective_from"]}]


def test_a_deposit_document_gives_the_available_balance_once(db) -> None:  # type: ignore[no-untyped-def]
    Wallet(db).create_player("P1", "EUR")
    document = json.loads(invoke("--db", url_of(db), "--json", "wallet", "deposit", "P1", "12.50", "--ref", "d-1").stdout)
    assert document == {"entry_id": document["entry_id"], "reference": "d-1", "replayed": False, "player_id": "P1",
                        "currency": "EUR", "available": "12.50", "locked": "0.00", "total": "12.50"}
