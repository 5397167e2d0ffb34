"""What an operator sees of lists: at 80 and 120 columns, in a pipe, as tsv/csv/json, in another zone, with NO_COLOR."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from click.testing import CliRunner

import commands._common
from cli import cli
from commands.discrepancy import DISCREPANCY_TYPES
from transfer_wallet.discrepancies import Finding, record
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
PLAYERS = [f"player-with-a-long-identifier-{n:04d}" for n in range(5)]
DETAIL = ("provider reports 11.00 but the ledger has 10.00 for this transfer; the provider's round log shows a "
          "second win that was never mirrored")
BOX = set("─│┃━┏┓┗┛┌┐└┘├┤┬┴┼╭╮╰╯")


@pytest.fixture
def opened(db) -> list[str]:
    """Five players with long ids, each with an open session of 12.50 EUR; three discrepancies."""
    wallet = Wallet(db)
    acme = InMemoryProvider(name="acme", currency_code="EUR", clock=lambda: T0)
    policy = SessionPolicy("EUR", idle_timeout_s=900, max_session_s=3600, stuck_after_attempts=3, retry_base_s=30)
    manager = SessionManager(db, {"acme": acme}, {"acme": policy}, clock=lambda: T0)
    ids = []
    for number, player in enumerate(PLAYERS):
        wallet.create_player(player, "EUR")
        wallet.deposit(player, "100.00", reference=f"dep-{number}")
        ids.append(manager.open_session(player, "acme", "12.50").id)
    for number in range(3):
        finding = Finding(
            kind="AMOUNT_MISMATCH", source="reconcile", fingerprint=f"reconcile:acme:{number}", provider="acme",
            business_date=dt.date(2026, 11, 23), transfer_id=f"{ids[number]}-in", provider_tx_id=f"p-{number}",
            player_id=PLAYERS[number], currency="EUR", expected_minor=1000, actual_minor=1100 + number,
            difference_minor=100 + number, fields={}, detail=DETAIL,
        )
        db.transaction(lambda connection: record(connection, finding, now=T0))
    return ids


@pytest.fixture
def tw(db, monkeypatch):
    url = db.engine.url.render_as_string(hide_password=False)
    monkeypatch.delenv("NO_COLOR", raising=False)

    def run(*args: str, code: int = 0, columns: int | None = None, env: dict[str, str] | None = None):
        runner = CliRunner()
        environment = {"COLUMNS": str(columns) if columns else None, **(env or {})}
        result = runner.invoke(cli, ["--db", url, *args], env=environment, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result

    return run


@pytest.mark.parametrize("width", [80, 120])
def test_session_ids_amounts_and_times_are_whole_at_any_width(tw, opened, width):
    out = tw("session", "list", columns=width).stdout
    assert "…" not in out and not set(out) & BOX
    for session_id in opened:
        assert session_id in out
    assert out.count("12.50") >= len(opened) and "2026-11-24 12:00:00" in out
    assert "opened_at (UTC)" in out
    assert all(len(line) <= width for line in out.splitlines())
    if width == 120:
        assert all(player in out for player in PLAYERS)


@pytest.mark.parametrize("width", [80, 120])
def test_discrepancy_detail_wraps_and_kind_is_never_cut(tw, opened, width):
    out = tw("discrepancy", "list", columns=width).stdout
    assert "…" not in out and out.count("AMOUNT_MISMATCH") == 3
    assert all(len(line) <= width for line in out.splitlines())
    assert "1.02" in out and "1.00" in out  # the differences
    assert "provider reports 11.00" in out and "mirrored" in out  # the detail, wrapped over lines
    difference = [line for line in out.splitlines() if line.startswith("3 ")][0]
    assert difference.index("1.02") > difference.index("AMOUNT_MISMATCH")


def test_amounts_line_up_on_their_last_digit(tw, opened):
    lines = [line for line in tw("discrepancy", "list", columns=200).stdout.splitlines() if line[:1].isdigit()]
    ends = {re.search(r"\s1\.0[0-2]\s", line).end() for line in lines}  # the difference column
    assert len(lines) == 3 and len(ends) == 1


def test_a_list_says_what_it_left_out(tw, opened):
    result = tw("session", "list", "--limit", "2")
    assert "2 of 5 sessions (use --limit / --offset)" in result.stderr
    assert result.stdout.count("active") == 2
    rest = tw("session", "list", "--limit", "2", "--offset", "4")
    assert "1 of 5 sessions from offset 4" in rest.stderr
    assert "of 5" not in tw("session", "list").stderr
    document = json.loads(tw("session", "list", "--limit", "2", "--json").stdout)
    assert (len(document["sessions"]), document["total"]) == (2, 5)
    assert "2 of 3 discrepancies" in tw("discrepancy", "list", "--limit", "2").stderr
    assert json.loads(tw("--json", "discrepancy", "list", "--offset", "1").stdout)["total"] == 3
    assert "3 of 5 players" in tw("player", "list", "--limit", "3").stderr
    players = json.loads(tw("player", "list", "--offset", "3", "--json").stdout)
    assert [p["player_id"] for p in players["players"]] == PLAYERS[3:] and players["total"] == 5


def test_json_after_the_command_name_is_the_same_document(tw, opened):
    assert tw("session", "list", "--json").stdout == tw("--json", "session", "list").stdout
    assert tw("session", "list", "--format", "json").stdout == tw("--json", "session", "list").stdout
    balance = json.loads(tw("wallet", "balance", PLAYERS[0], "--json").stdout)
    assert balance["available"] == "87.50"
    assert "T12:00:00+00:00" in tw("session", "list", "--json").stdout  # JSON keeps ISO-8601 with its offset


def test_tsv_and_csv_are_for_scripts(tw, opened):
    tsv = tw("session", "list", "--format", "tsv").stdout.splitlines()
    assert tsv[0].split("\t")[:2] == ["session_id", "player_id"] and len(tsv) == 6
    assert {line.split("\t")[0] for line in tsv[1:]} == set(opened)
    assert all(line.split("\t")[-1] == "2026-11-24T12:00:00+00:00" for line in tsv[1:])
    rows = list(csv.DictReader(io.StringIO(tw("discrepancy", "list", "--format", "csv").stdout)))
    assert [r["difference"] for r in rows] == ["1.02", "1.01", "1.00"] and rows[0]["detail"] == DETAIL


def test_another_zone_is_named_in_the_header_and_json_does_not_change(tw, opened):
    out = tw("--tz", "Europe/Malta", "session", "list", columns=120).stdout
    assert "opened_at (Europe/Malta)" in out and "2026-11-24 13:00:00" in out
    assert tw("--tz", "Europe/Malta", "--json", "session", "list").stdout == tw("--json", "session", "list").stdout
    shown = tw("--tz", "Europe/Malta", "session", "show", opened[0]).stdout
    assert "opened 2026-11-24 13:00:00 Europe/Malta" in shown
    bad = tw("--tz", "Mars/Olympus", "session", "list", code=2)
    assert bad.stdout == "" and "Mars/Olympus" in bad.stderr


def test_unknown_type_or_status_is_a_usage_error_not_an_empty_list(tw, opened):
    for args in (["--type", "AMOUNT_MISMATHC"], ["--kind", "nope"], ["--status", "closedd"]):
        result = tw("discrepancy", "list", *args, code=2)
        assert result.stdout == ""
    assert tw("session", "list", "--status", "opne", code=2).stdout == ""
    assert tw("discrepancy", "list", "--type", "amount_mismatch").stdout.count("AMOUNT_MISMATCH") == 3


def test_discrepancy_types_cover_every_type_the_code_records():
    """Every kind the library and the jobs record (a literal ``kind="..."`` or a session flag) can be listed."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    recorded = {
        kind
        for path in [*root.joinpath("transfer_wallet").rglob("*.py"), *root.joinpath("jobs").glob("*.py")]
        for kind in re.findall(r'(?:kind=|_flag\([^"\n]*)"([A-Z_]{6,})"', path.read_text(encoding="utf-8"))
    }
    assert {"SESSION_CONSERVATION", "TRANSFER_CONFLICT", "FILE_MISSING", "DUPLICATE_FILE"} <= recorded
    assert recorded <= set(DISCREPANCY_TYPES)


def test_a_terminal_gets_a_table_and_no_color_turns_every_style_off(tw, opened, monkeypatch):
    monkeypatch.setattr(commands._common, "stdout_is_terminal", lambda: True)
    styled = tw("session", "list", columns=120).stdout
    assert set(styled) & BOX and "\x1b[" in styled  # borders, a bold header
    plain = tw("session", "list", columns=120, env={"NO_COLOR": "1"}).stdout
    assert set(plain) & BOX and "\x1b" not in plain
    for session_id in opened:
        assert session_id in plain
    assert all(len(line) <= 120 for line in plain.splitlines())


def test_durations_are_shown_as_durations(tw, opened):
    tw("limits", "set", PLAYERS[0], "--session-length", "90m")
    shown = tw("limits", "show", PLAYERS[0]).stdout
    assert "1h30m" in shown and "5400" not in shown
    assert "5400" in json.dumps(json.loads(tw("limits", "show", PLAYERS[0], "--json").stdout)["limits"])


def test_report_out_dash_writes_the_report_to_stdout_and_the_summary_to_stderr(sqlite_db, tmp_path, monkeypatch):
    from pathlib import Path

    for name in ("TW_ACME_SECRET_2026_09", "TW_ACME_SECRET_2026_11", "TW_BETSUL_SECRET_K1"):
        monkeypatch.setenv(name, f"render-test-{name.lower()}")
    providers = Path(__file__).resolve().parents[1] / "sample_data" / "providers.toml"
    url = sqlite_db.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["--db", url, "--providers", str(providers), "simulate", "--provider", "acme",
                                      "--players", "2", "--sessions", "3", "--report-out", "-",
                                      "--store", str(tmp_path / "store")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = list(csv.reader(io.StringIO(result.stdout)))
    assert "tx_id" in report[0] and len(report) >= 4  # a header and at least one row per session
    assert "simulated 3 sessions" in result.stderr and "simulated" not in result.stdout
