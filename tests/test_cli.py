"""The ``tw`` command line as an operator uses it: help, tables, --json, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from cli import cli


@pytest.fixture
def tw(db):
    """Run ``tw --db <test database> ARGS``; returns the click Result."""
    url = db.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, ["--db", url, *args], catch_exceptions=False)

    run.db = db
    return run


def entry_count(db) -> int:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT COUNT(*) FROM entries")).scalar_one()


def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


def test_every_command_has_help_with_an_example():
    missing = []
    for path, command in walk(cli):
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        if "Example" not in result.output:
            missing.append(" ".join(path) or "tw")
    assert not missing, f"commands without an example in --help: {missing}"


def test_an_operator_session_from_player_to_clean_ledger(tw):
    assert tw("player", "create", "P1", "--currency", "EUR").exit_code == 0
    assert tw("wallet", "deposit", "P1", "20.00", "--ref", "dep-1").exit_code == 0
    result = tw("wallet", "withdraw", "P1", "13.50", "--ref", "wd-1")
    assert "available 6.50" in result.output
    result = tw("--json", "wallet", "balance", "P1")
    assert json.loads(result.output) == {
        "player_id": "P1", "currency": "EUR", "available": "6.50", "locked": "0.00", "total": "6.50",
    }
    table = tw("wallet", "balance", "P1").output
    assert "available" in table and "6.50" in table
    check = tw("--json", "ledger", "check")
    assert check.exit_code == 0
    assert json.loads(check.output)["clean"] is True


def test_json_output_is_one_document_for_every_write_command(tw):
    for args in (("player", "create", "P1", "--currency", "EUR"),
                 ("wallet", "deposit", "P1", "1.00", "--ref", "r1"),
                 ("wallet", "withdraw", "P1", "0.50", "--ref", "r2"),
                 ("fx", "set", "EUR", "USD", "1.0854"),
                 ("fx", "show"),
                 ("player", "list"),
                 ("ledger", "check")):
        result = tw("--json", *args)
        assert result.exit_code == 0, (args, result.output)
        json.loads(result.output)  # exactly one JSON document
    rates = json.loads(tw("--json", "fx", "show").output)["rates"]
    assert [(r["base"], r["quote"], r["rate"]) for r in rates] == [("EUR", "USD", "1.0854")]


def test_a_replayed_deposit_says_so_and_moves_nothing(tw):
    tw("player", "create", "P1", "--currency", "EUR")
    tw("wallet", "deposit", "P1", "5.00", "--ref", "d1")
    again = json.loads(tw("--json", "wallet", "deposit", "P1", "5.00", "--ref", "d1").output)
    assert again["replayed"] is True and again["available"] == "5.00"


BAD_INPUTS = [
    (("wallet", "deposit", "P1", "-5"), "positive"),
    (("wallet", "deposit", "P1", "0"), "greater than zero"),
    (("wallet", "deposit", "P1", "0.00"), "greater than zero"),
    (("wallet", "deposit", "P1", "NaN"), "NaN"),
    (("wallet", "deposit", "P1", "inf"), "inf"),
    (("wallet", "deposit", "P1", "1e400"), "exponent"),
    (("wallet", "deposit", "P1", "1.234"), "EUR allows 2"),
    (("wallet", "deposit", "P1", "12,50"), "decimal separator"),
    (("wallet", "deposit", "P1", "99999999999999999999"), "too large"),
    (("wallet", "deposit", "P1", "abc"), "amount"),
    (("wallet", "deposit", "NOBODY", "1.00"), "unknown player 'NOBODY'"),
    (("wallet", "deposit", "P1", "1.00", "--ref", "bad ref!"), "invalid reference"),
    (("wallet", "withdraw", "P1", "500.00"), "insufficient funds"),
    (("wallet", "deposit", "P1", "11.00", "--ref", "dep-1"), "already used"),
    (("player", "create", "P2", "--currency", "ABC"), "unknown currency 'ABC'"),
    (("player", "create", "P1", "--currency", "USD"), "already exists with currency EUR"),
    (("player", "create", "bad id!", "--currency", "EUR"), "invalid player id"),
    (("fx", "set", "EUR", "EUR", "1"), "two different currencies"),
    (("fx", "set", "EUR", "USD", "-1"), "rate"),
    (("fx", "set", "EUR", "USD", "NaN"), "rate"),
    (("fx", "set", "EUR", "XYZ", "1.1"), "unknown currency 'XYZ'"),
    (("fx", "set", "EUR", "USD", "1.1", "--effective-at", "yesterday"), "ISO 8601"),
    (("wallet", "balance", "NOBODY"), "unknown player"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_on_stderr_exit_1_and_nothing_written(tw, args, message):
    tw("player", "create", "P1", "--currency", "EUR")
    tw("wallet", "deposit", "P1", "10.00", "--ref", "dep-1")
    before = entry_count(tw.db)
    result = tw(*args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert entry_count(tw.db) == before
    assert tw("--json", "wallet", "balance", "P1").output.count('"available": "10.00"') == 1


def test_usage_errors_exit_2(tw):
    assert tw("wallet", "deposit", "P1").exit_code == 2
    assert tw("no-such-command").exit_code == 2


def test_an_unmigrated_database_asks_for_db_upgrade(tmp_path):
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'empty.db'}", "wallet", "balance", "P1"])
    assert result.exit_code == 1
    assert "tw db upgrade" in result.stderr and "Traceback" not in result.output


def test_an_unsupported_database_url_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["--db", "mysql://x/y", "ledger", "check"])
    assert result.exit_code == 1 and "unsupported database" in result.stderr


def test_tw_help_starts_without_importing_heavy_libraries():
    probe = (
        "import sys, runpy; sys.argv = ['tw', '--help']\n"
        "try:\n    runpy.run_module('cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pandas', 'httpx', 'sqlalchemy', 'sqlmodel', 'alembic', 'rich') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "HEAVY=\n" in output or output.rstrip().endswith("HEAVY="), output
