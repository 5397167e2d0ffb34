"""Finance at the terminal: ``tw discrepancy list / show / resolve / note / summary`` on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from cli import cli
from transfer_wallet import discrepancies
from transfer_wallet.discrepancies import Finding, record

UTC = dt.timezone.utc
FIRST_SEEN = dt.datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def put(db, tx: str, *, kind: str = "AMOUNT_MISMATCH", provider: str = "acme", day=dt.date(2026, 11, 23),
        at: dt.datetime = FIRST_SEEN) -> int:
    finding = Finding(
        kind=kind, source="reconcile", fingerprint=f"reconcile:{provider}:{day}:{kind}:{tx}", provider=provider,
        business_date=day, transfer_id=tx, provider_tx_id=f"p-{tx}", player_id="P1", currency="EUR",
        expected_minor=1000, actual_minor=1100, difference_minor=100,
        fields={"amount": {"ledger": "10.00", "provider": "11.00"}}, detail=f"provider reports 11.00, ledger 10.00 ({tx})",
    )
    return db.transaction(lambda connection: record(connection, finding, now=at))


@pytest.fixture
def tw(db):
    url = db.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(cli, ["--db", url, *args], catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result

    return run


def events(db, discrepancy_id: int) -> int:
    return len(discrepancies.get(db, discrepancy_id).history)


@freeze_time("2026-12-01 08:00:00", tick=True)
def test_finance_lists_investigates_and_resolves_a_break(db, tw):
    first = put(db, "t-1")
    second = put(db, "t-2", kind="MISSING_IN_LEDGER", provider="betsul", day=dt.date(2026, 11, 30),
                 at=dt.datetime.now(UTC))

    listed = json.loads(tw("--json", "discrepancy", "list").output)["discrepancies"]
    assert [d["id"] for d in listed] == [second, first]
    assert (listed[1]["kind"], listed[1]["expected"], listed[1]["actual"], listed[1]["difference"]) == (
        "AMOUNT_MISMATCH", "10.00", "11.00", "1.00")
    assert listed[1]["first_seen_at"] == "2026-11-24T07:00:00+00:00" and "history" not in listed[1]

    assert [(d["id"], d["age_days"]) for d in json.loads(tw("--json", "discrepancy", "list", "--older-than", "7").output)
            ["discrepancies"]] == [(first, 7)]
    assert json.loads(tw("--json", "discrepancy", "list", "--older-than", "8").output)["discrepancies"] == []
    assert [d["id"] for d in json.loads(tw("--json", "discrepancy", "list", "--type", "missing_in_ledger").output)
            ["discrepancies"]] == [second]
    assert [d["id"] for d in json.loads(tw("--json", "discrepancy", "list", "--kind", "MISSING_IN_LEDGER").output)
            ["discrepancies"]] == [second]
    assert [d["id"] for d in json.loads(tw("--json", "discrepancy", "list", "--provider", "acme",
                                           "--date", "2026-11-23", "--status", "open").output)["discrepancies"]] == [first]

    moved = json.loads(tw("--json", "discrepancy", "resolve", str(first), "--status", "investigating",
                          "--note", "asked acme for the round log", "--by", "anna").output)
    assert (moved["status"], moved["note"], moved["changed_by"]) == ("investigating", "asked acme for the round log", "anna")
    tw("discrepancy", "resolve", str(first), "--status", "resolved", "--note", "acme credited 1.00", "--by", "bo")

    shown = json.loads(tw("--json", "discrepancy", "show", str(first)).output)
    assert [(e["actor"], e["action"], e["from_status"], e["to_status"], e["note"]) for e in shown["history"]] == [
        ("system", "recorded", None, "open", None),
        ("anna", "transition", "open", "investigating", "asked acme for the round log"),
        ("bo", "transition", "investigating", "resolved", "acme credited 1.00"),
    ]
    assert shown["fields"] == {"amount": {"ledger": "10.00", "provider": "11.00"}} and shown["closed_at"]
    assert [d["id"] for d in json.loads(tw("--json", "discrepancy", "list", "--status", "unresolved").output)
            ["discrepancies"]] == [second]


def test_show_and_list_print_tables_for_people(db, tw):
    found = put(db, "t-1")
    tw("discrepancy", "resolve", str(found), "--status", "written_off", "--note", "below threshold", "--by", "anna")
    shown = tw("discrepancy", "show", str(found)).output
    assert f"discrepancy {found}: AMOUNT_MISMATCH written_off  provider acme" in shown
    assert "expected 10.00  actual 11.00  difference 1.00  EUR" in shown
    assert "anna  transition  open -> written_off  below threshold" in shown
    assert "nothing to show" in tw("discrepancy", "list", "--status", "open").output
    table = tw("discrepancy", "list").output
    assert "AMOUNT_MISMATCH" in table and "written_off" in table


def test_a_note_and_the_summary(db, tw):
    found = put(db, "t-1")
    put(db, "t-2")
    put(db, "t-3", kind="MISSING_IN_LEDGER")
    noted = json.loads(tw("--json", "discrepancy", "note", str(found), "--note", "CFO knows", "--by", "carl").output)
    assert (noted["status"], noted["note"], noted["history"][-1]["action"]) == ("open", "CFO knows", "note")
    summary = json.loads(tw("--json", "discrepancy", "summary", "--status", "unresolved").output)
    assert summary["total"] == 3
    assert [(c["kind"], c["provider"], c["status"], c["count"]) for c in summary["counts"]] == [
        ("AMOUNT_MISMATCH", "acme", "open", 2), ("MISSING_IN_LEDGER", "acme", "open", 1)]
    assert "discrepancies by type and provider" in tw("discrepancy", "summary").output


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_resolving_twice_or_an_unknown_id_is_one_line_exit_1_and_writes_nothing(db, tw):
    found = put(db, "t-1")
    tw("discrepancy", "resolve", str(found), "--status", "resolved", "--note", "paid", "--by", "anna")
    again = tw("discrepancy", "resolve", str(found), "--status", "resolved", "--note", "paid", "--by", "bo", code=1)
    assert one_error_line(again) == f"error: discrepancy {found} is already resolved"
    assert events(db, found) == 2
    assert one_error_line(tw("discrepancy", "show", "999", code=1)) == "error: no discrepancy 999"
    assert one_error_line(tw("discrepancy", "resolve", "999", "--status", "resolved", "--note", "x", "--by", "bo",
                             code=1)) == "error: no discrepancy 999"


@pytest.mark.parametrize("args", [
    ["list", "--status", "closed"],
    ["list", "--date", "23/11/2026"],
    ["list", "--older-than", "-1"],
    ["list", "--limit", "0"],
    ["list", "--type", "AMOUNT MISMATCH"],
    ["list", "--type", "AMOUNT_MISMATCH", "--kind", "MISSING_IN_LEDGER"],
    ["show", "abc"],
    ["resolve", "{id}", "--status", "cleared", "--note", "x", "--by", "anna"],
    ["resolve", "{id}", "--status", "open", "--note", "x", "--by", "anna"],
    ["resolve", "{id}", "--status", "resolved", "--note", "   ", "--by", "anna"],
    ["resolve", "{id}", "--status", "resolved", "--note", "x" * 2001, "--by", "anna"],
    ["resolve", "{id}", "--status", "resolved", "--note", "paid", "--by", "system"],
    ["resolve", "{id}", "--status", "resolved", "--note", "paid", "--by", "anna; rm -rf"],
    ["resolve", "{id}", "--status", "resolved", "--note", "paid"],
])
def test_a_bad_option_value_is_a_usage_error_exit_2_and_writes_nothing(db, tw, args):
    found = put(db, "t-1")
    tw("discrepancy", *[a.replace("{id}", str(found)) for a in args], code=2)
    view = discrepancies.get(db, found)
    assert (view.status, len(view.history)) == ("open", 1)


def test_every_command_has_help_with_an_example(tw):
    for command in ([], ["list"], ["show"], ["resolve"], ["note"], ["summary"]):
        text = tw("discrepancy", *command, "--help").output
        assert "Example" in text and "tw discrepancy" in text, command
    assert "--kind" not in tw("discrepancy", "list", "--help").output
