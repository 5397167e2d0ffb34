"""Nasty values in every argument position: one ``error:`` line or a usage error, never a traceback.

The attack fuzzed 6,200 inputs and got 62 tracebacks from 8 causes (calendar-limit
instants, arguments that are not UTF-8, impossible ``--out`` paths, a game id over
64 characters, an overflowing FX rate, NUL bytes). Here each command template gets
each nasty value in its ``{}`` slot and must end with exit 0, 1 or 2; a failure
writes nothing and says so in exactly one line on stderr.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from cli import cli
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {"TW_ACME_SECRET_2026_09": "fuzz-old-secret", "TW_ACME_SECRET_2026_11": "fuzz-new-secret",
           "TW_BETSUL_SECRET_K1": "fuzz-betsul-secret"}

NASTY = [
    "P1\n", "dep-1\r\n", "\x00", "P\x00", "\udcff", "a\udcffb", "", " ", "-", "x" * 65, "y" * 300,
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2026-11-24T12:00:00", "92233720368547758.08",
    "99999999999999999999", "-1", "1e400", "NaN", "0", "\u2028", "١٢٣", "'; DROP TABLE players; --", "%s%n{0}",
]

#: On PostgreSQL (slower per command) the values that reach the database driver differently.
NASTY_POSTGRES = ["P\x00", "\udcff", "x" * 65, "y" * 300, "9999-12-31T23:59:59-01:00", "92233720368547758.08",
                  "99999999999999999999"]

TEMPLATES = [
    ("player", "create", "{}", "--currency", "EUR"),
    ("player", "create", "P2", "--currency", "{}"),
    ("wallet", "deposit", "{}", "1.00"),
    ("wallet", "deposit", "P1", "{}", "--ref", "dep-9"),
    ("wallet", "deposit", "P1", "1.00", "--ref", "{}"),
    ("wallet", "withdraw", "P1", "{}", "--ref", "wd-9"),
    ("wallet", "balance", "{}"),
    ("fx", "set", "EUR", "{}", "1.1"),
    ("fx", "set", "EUR", "BRL", "{}"),
    ("fx", "set", "EUR", "BRL", "5.1", "--effective-at", "{}"),
    ("session", "show", "{}"),
    ("session", "list", "--player", "{}"),
    ("play", "bet", "{}", "--tx", "t-1", "--round", "r-1", "--amount", "1.00"),
    ("play", "bet", "s-none", "--tx", "t-1", "--round", "r-1", "--amount", "1.00", "--game", "{}"),
    ("limits", "set", "P1", "--loss-day", "{}"),
    ("limits", "set", "P1", "--self-exclude-until", "{}"),
    ("limits", "show", "{}"),
    ("jobs", "run", "timeouts", "--now", "{}"),
    ("provider", "report", "nobody", "--date", "2026-11-24", "--out", "{}"),
]

TABLES = ("players", "entries", "fx_rates", "player_limits", "game_sessions", "play_transactions")


def _counts(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with db.engine.connect() as connection:
        return {t: connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}


@pytest.fixture
def invoke(db, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # any file a command may write lands here
    base = ["--db", db.engine.url.render_as_string(hide_password=False),
            "--providers", str(ROOT / "sample_data" / "providers.toml")]
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, [*base, *args])

    assert run("player", "create", "P1", "--currency", "EUR").exit_code == 0
    assert run("wallet", "deposit", "P1", "10.00", "--ref", "dep-1").exit_code == 0
    return run


def _check(result, args, written: bool) -> None:  # type: ignore[no-untyped-def]
    where = repr(args)
    assert result.exit_code in (0, 1, 2), (where, result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (where, repr(result.exception))
    assert "Traceback" not in result.output, where
    if result.exit_code == 1:
        lines = result.stderr.split("\n")
        assert len(lines) == 2 and lines[1] == "" and lines[0].startswith("error: "), (where, result.stderr)
        assert "[parameters" not in result.stderr and "[SQL" not in result.stderr, where
        assert not written, (where, "a failed command wrote to the database")
    if result.exit_code == 2:
        lines = result.stderr.split("\n")  # usage errors too are one line (issue 10, item 6)
        assert len(lines) == 2 and lines[1] == "" and lines[0].startswith("error: "), (where, result.stderr)
        assert not written, where


def test_no_nasty_value_in_any_position_gives_a_traceback_or_a_split_error(invoke, db) -> None:  # type: ignore[no-untyped-def]
    failures = 0
    values = NASTY_POSTGRES if db.engine.dialect.name == "postgresql" else NASTY
    for template in TEMPLATES:
        for value in values:
            args = tuple(value if part == "{}" else part for part in template)
            before = _counts(db)
            result = invoke(*args)
            _check(result, args, written=_counts(db) != before)
            failures += result.exit_code != 0
    assert failures > len(TEMPLATES) * len(values) * 0.8  # nearly all of them are refused


CAUSES = {
    "not UTF-8": (("session", "show", "\udcff"), "not valid UTF-8"),
    "--now at year 9999": (("jobs", "run", "timeouts", "--now", "9999-12-31T23:59:59-01:00"), "outside the years"),
    "--effective-at at year 1": (("fx", "set", "EUR", "BRL", "1.1", "--effective-at", "0001-01-01T00:00:00+01:00"),
                                 "outside the years"),
    "rate overflow": (("fx", "set", "EUR", "BRL", "92233720368547758.08"), "at most 1000000"),
    "NUL in a player id": (("player", "create", "P\x00", "--currency", "EUR"), "NUL"),
    "--out into a missing folder": (("provider", "report", "acme", "--date", "2026-11-24", "--out", "nowhere/r.csv"),
                                    "does not exist"),
    "--out of 300 characters": (("provider", "report", "acme", "--date", "2026-11-24", "--out", "r" * 300),
                                "file name longer than"),
}


@pytest.mark.parametrize(("args", "message"), CAUSES.values(), ids=CAUSES.keys())
def test_each_cause_the_attack_found_is_now_one_error_line(invoke, db, args, message) -> None:  # type: ignore[no-untyped-def]
    before = _counts(db)
    result = invoke(*args)
    assert result.exit_code == 1, (result.exit_code, result.output)
    _check(result, args, written=_counts(db) != before)
    assert message in result.stderr


def test_a_game_id_over_64_characters_is_refused_and_not_stored(invoke, db) -> None:  # type: ignore[no-untyped-def]
    manager = SessionManager(db, {"acme": InMemoryProvider(name="acme")}, {"acme": SessionPolicy("EUR")})
    session = manager.open_session("P1", "acme", "5.00")
    bet = ("play", "bet", session.id, "--tx", "t-1", "--round", "r-1", "--amount", "1.00", "--game")
    before = _counts(db)
    result = invoke(*bet, "g" * 65)
    assert result.exit_code == 1 and "game id must be 1-64 characters" in result.stderr, result.output
    _check(result, bet, written=_counts(db) != before)
    assert invoke(*bet, "g" * 64).exit_code == 0
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT game_id FROM game_rounds")).scalar_one() == "g" * 64
