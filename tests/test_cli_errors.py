"""How the ``tw`` boundary reports what went wrong: one line, no SQL, no parameters, no silent gaps."""

from __future__ import annotations

import importlib

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import cli as cli_module
from cli import cli
from commands._common import one_line


@pytest.fixture
def tw(db):  # type: ignore[no-untyped-def]
    url = db.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, ["--db", url, *args])


@pytest.fixture
def frozen_players(db):  # type: ignore[no-untyped-def]
    """A trigger that makes the database itself refuse a write (a real error, not a mock); dropped after.

    The PostgreSQL test database is shared by the run (tables are truncated between tests),
    so the trigger must not outlive this test.
    """
    _refuse_inserts_into_players(db)
    yield
    with db.engine.begin() as connection:
        connection.execute(text("DROP TRIGGER IF EXISTS refuse_players" + ("" if db.engine.dialect.name == "sqlite" else " ON players")))
        if db.engine.dialect.name != "sqlite":
            connection.execute(text("DROP FUNCTION IF EXISTS refuse_players()"))


def _refuse_inserts_into_players(db) -> None:  # type: ignore[no-untyped-def]
    with db.engine.begin() as connection:
        if db.engine.dialect.name == "sqlite":
            connection.execute(text(
                "CREATE TRIGGER refuse_players BEFORE INSERT ON players "
                "BEGIN SELECT RAISE(ABORT, 'players are frozen'); END"
            ))
        else:
            connection.execute(text(
                "CREATE FUNCTION refuse_players() RETURNS trigger AS "
                "$$ BEGIN RAISE EXCEPTION 'players are frozen' USING DETAIL = 'secret detail line'; END $$ "
                "LANGUAGE plpgsql"
            ))
            connection.execute(text(
                "CREATE TRIGGER refuse_players BEFORE INSERT ON players FOR EACH ROW EXECUTE FUNCTION refuse_players()"
            ))


def test_a_database_error_is_one_line_without_the_sql_or_its_parameters(tw, frozen_players) -> None:  # type: ignore[no-untyped-def]
    result = tw("player", "create", "P-secret-id", "--currency", "EUR")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: database error: ") and "players are frozen" in result.stderr
    assert result.stderr.count("\n") == 1
    for leak in ("P-secret-id", "[parameters", "[SQL", "INSERT", "secret detail line"):
        assert leak not in result.stderr


def test_an_unmigrated_database_still_asks_for_db_upgrade(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty.db").touch()  # a file without the schema (a missing file is refused earlier)
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'empty.db'}", "player", "create", "P1", "--currency", "EUR"])
    assert result.exit_code == 1 and "run `tw db upgrade` first" in result.stderr
    assert "schema missing" in result.stderr


def test_an_error_message_with_line_breaks_is_printed_on_one_line() -> None:
    assert one_line("bad value 'a\nb'\r\x00\u2028end") == "bad value 'a\\nb'\\r\\x00\\u2028end"
    assert one_line("surrogate \udcff") == "surrogate \\udcff"
    assert one_line("plain message, with spaces: ok") == "plain message, with spaces: ok"


def test_arguments_that_are_not_utf8_are_refused_before_any_command_runs(tw) -> None:  # type: ignore[no-untyped-def]
    result = tw("session", "show", "\udcff")
    assert result.exit_code == 1
    assert result.stderr == "error: argument 5 ('\\udcff') is not valid UTF-8\n"


def test_a_command_module_that_fails_to_import_fails_loudly(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(cli_module.GROUPS, "broken", "commands.no_such_module:broken")
    with pytest.raises(ModuleNotFoundError, match="commands.no_such_module"):
        cli_module._register()


def test_every_listed_group_is_registered() -> None:
    importlib.reload(cli_module)
    assert set(cli_module.GROUPS) <= set(cli_module.cli.commands)
