"""``tw session show`` reads on the plain driver and prints exactly what the full database layer printed.

The story: a player with an active session and its rounds, a closed one, one played in
dollars (FX both ways), one stuck closing, one in doubt and one failed. On each backend,
the light read (``transfer_wallet.session_views`` on a ``sqlite3``/``psycopg`` cursor)
must build the same views as SQLAlchemy's typed rows do (aware UTC times, booleans), and
the command must print the same bytes (table, ``--tz``, ``--json``, errors) as through
the full layer, without importing SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cli import cli
from commands._common import CliContext
from tests.test_startup import heavy, loaded_modules_and_output
from transfer_wallet import fx, session_views
from transfer_wallet.db import Database
from transfer_wallet.dbapi import FullReader, LightReader, Reader, light_target
from transfer_wallet.errors import OutcomeUnknownError, RejectedError
from transfer_wallet.models import GameRound, table_of
from transfer_wallet.play import PlayMirror, rounds_of
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.sessions.state import sessions_table, transfers_table
from transfer_wallet.wallet import Wallet

T0 = dt.datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
NEVER_FOR_SESSION_SHOW = ("sqlalchemy", "sqlmodel", "pydantic", "pandas", "numpy", "httpx", "apscheduler", "alembic",
                          "transfer_wallet.models", "transfer_wallet.db", "transfer_wallet.sessions")


def play_a_day(db: Database) -> dict[str, str]:
    """Sessions in every state ``session show`` renders differently; their ids by story name."""
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "500.00", reference="dep-1")
    fx.set_rate(db, "EUR", "USD", "1.0854", effective_at=T0 - dt.timedelta(days=1))
    fx.set_rate(db, "USD", "EUR", "0.9213", effective_at=T0 - dt.timedelta(days=1))
    acme = InMemoryProvider(name="acme", currency_code="EUR", clock=lambda: T0)
    dollarama = InMemoryProvider(name="dollarama", currency_code="USD", clock=lambda: T0)
    manager = SessionManager(
        db, {"acme": acme, "dollarama": dollarama},
        {"acme": SessionPolicy("EUR", stuck_after_attempts=3, max_open_sessions=10),
         "dollarama": SessionPolicy("USD", max_open_sessions=10)}, clock=lambda: T0)
    mirror, ids = PlayMirror(db), {}

    stuck = manager.open_session("P1", "acme", "10.00", now=T0)
    acme.fail_next(RejectedError("round in progress"), times=3)
    manager.close_session(stuck.id, now=T0)
    manager.expire_sessions(T0 + dt.timedelta(hours=1))
    manager.expire_sessions(T0 + dt.timedelta(hours=2))
    ids["stuck"] = stuck.id

    later = T0 + dt.timedelta(hours=3)  # after the sweeps, so that these sessions stay as left
    active = manager.open_session("P1", "acme", "50.00", now=later)
    mirror.bet(active.id, "b1", "r1", "2.00", game_id="slot-1", now=later)
    mirror.win(active.id, "w1", "r1", "3.00", now=later + dt.timedelta(seconds=1))
    mirror.bet(active.id, "b2", "r2", "1.00", now=later + dt.timedelta(seconds=2))
    mirror.refund(active.id, "x2", "r2", "b2", now=later + dt.timedelta(seconds=3))
    ids["active"] = active.id
    closed = manager.open_session("P1", "acme", "20.00", now=later)
    mirror.bet(closed.id, "cb1", "cr1", "5.00", game_id="slot-1", now=later)
    manager.close_session(closed.id, now=later + dt.timedelta(minutes=5))
    ids["closed"] = closed.id
    dollars = manager.open_session("P1", "dollarama", "10.00", now=later)
    ids["fx"] = manager.close_session(dollars.id, now=later + dt.timedelta(minutes=1)).id
    acme.fail_next(OutcomeUnknownError("read timeout"), apply=True)
    ids["in_doubt"] = manager.open_session("P1", "acme", "30.00", now=later).id
    acme.fail_next(RejectedError("player blocked at provider"))
    ids["failed"] = manager.open_session("P1", "acme", "5.00", now=later).id
    return ids


def url_of(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def light_reader(db: Database) -> Reader:
    target = light_target(url_of(db))
    assert target is not None
    return LightReader(target)


def test_the_light_read_builds_the_views_sqlalchemy_typed_rows_build(db: Database) -> None:
    ids = play_a_day(db)
    rounds_table = table_of(GameRound)
    with db.engine.connect() as connection:
        for session_id in ids.values():
            row = connection.execute(select(sessions_table).where(sessions_table.c.id == session_id)).one()
            transfers = connection.execute(select(transfers_table).where(transfers_table.c.session_id == session_id)
                                           .order_by(transfers_table.c.created_at, transfers_table.c.id)).all()
            rounds = connection.execute(select(rounds_table).where(rounds_table.c.session_id == session_id)
                                        .order_by(rounds_table.c.started_at, rounds_table.c.id)).all()
            typed_view = session_views.to_view(row._mapping, [t._mapping for t in transfers])
            typed_rounds = session_views.to_rounds(typed_view.game_amount_in.currency, [r._mapping for r in rounds])

            view, history = light_reader(db).run(lambda c: session_views.read_session_and_rounds(c, session_id))
            assert repr(view) == repr(typed_view)  # repr: the same instants *and* the same zone (UTC)
            assert history == typed_rounds == rounds_of(db, session_id)
            assert repr(SessionManager(db, {}, {}).get(session_id)) == repr(view)
    kinds = {name: SessionManager(db, {}, {}).get(session_id).display_status for name, session_id in ids.items()}
    assert kinds == {"stuck": "closing (stuck)", "active": "active", "closed": "closed", "fx": "closed",
                     "in_doubt": "opening (in doubt)", "failed": "failed"}


def show(db: Database, monkeypatch: pytest.MonkeyPatch, *args: str, full: bool) -> tuple[int, str, str]:
    """``tw --db URL session show ...`` in process: on the light path, or forced through the full layer."""
    with monkeypatch.context() as patch:
        if full:
            patch.setattr(CliContext, "reader", lambda self: FullReader(self.database()))
        result = CliRunner().invoke(cli, ["--db", url_of(db), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("options", [(), ("--tz", "Europe/Malta"), ("--json",)])
def test_session_show_prints_the_same_bytes_on_the_light_path_as_through_the_full_layer(
        db: Database, monkeypatch: pytest.MonkeyPatch, options: tuple[str, ...]) -> None:
    ids = play_a_day(db)
    for session_id in [*ids.values(), "s0123456789abcdef0123", "s-missing", "S0123456789ABCDEF0123", "x'y"]:
        args = (*options, "session", "show", session_id)
        light, full = show(db, monkeypatch, *args, full=False), show(db, monkeypatch, *args, full=True)
        assert light == full
        assert light[0] == (0 if session_id in ids.values() else 1)


def test_an_fx_session_shows_both_currencies_its_rates_and_its_rounds(db: Database) -> None:
    ids = play_a_day(db)
    PlayMirror(db).bet(ids["active"], "b3", "r3", "1.50", game_id="slot-2", now=T0 + dt.timedelta(hours=3, seconds=4))
    fx_id, active_id = ids["fx"], ids["active"]
    shown = CliRunner().invoke(cli, ["--db", url_of(db), "session", "show", fx_id])
    assert shown.stdout == (
        f"session {fx_id}: closed  player P1 at dollarama\n"
        "  in 10.00 EUR -> 10.85 USD   game balance 10.85   out 9.99\n"
        "  opened 2026-11-24 15:00:00 UTC   deadline 2026-11-24 15:15:00 UTC"
        "   closed 2026-11-24 15:01:00 UTC (player)\n"
        f"  transfer {fx_id}-in IN completed amount 10.00 game 10.85 rate 1.0854 attempts 0\n"
        f"  transfer {fx_id}-out1 OUT completed amount 9.99 game 10.85 rate 0.9213 attempts 0\n"
    )
    shown = CliRunner().invoke(cli, ["--db", url_of(db), "--tz", "Europe/Malta", "session", "show", active_id])
    assert shown.stdout.splitlines()[2:] == [
        "  opened 2026-11-24 16:00:00 Europe/Malta   deadline 2026-11-24 16:15:04 Europe/Malta",
        f"  transfer {active_id}-in IN completed amount 50.00 game 50.00 rate - attempts 0",
        "  round r1 settled bet 2.00 win 3.00 refund 0.00 game slot-1",
        "  round r2 refunded bet 1.00 win 0.00 refund 1.00 game -",
        "  round r3 open bet 1.50 win 0.00 refund 0.00 game slot-2",
    ]


def test_session_show_imports_no_sqlalchemy_pydantic_pandas_or_httpx(db: Database) -> None:
    ids = play_a_day(db)
    for args, code, expected in [
        (("--json", "session", "show", ids["active"]), 0, '"game_balance": "51.00"'),
        (("session", "show", ids["in_doubt"]), 0, "opening (in doubt)"),
        (("session", "show", "s0123456789abcdef0123"), 1, "error: unknown session 's0123456789abcdef0123'"),
    ]:
        exit_code, modules, shown = loaded_modules_and_output("--db", url_of(db), *args)
        assert (exit_code, expected in shown) == (code, True), shown
        assert heavy(modules, NEVER_FOR_SESSION_SHOW) == []
        assert ("sqlite3" if db.engine.dialect.name == "sqlite" else "psycopg") in modules


def test_an_id_the_library_never_gives_out_is_unknown_without_a_query(tmp_path: Any) -> None:
    """Only well-formed ids reach the database: on a file with no schema, a malformed id is simply unknown."""
    (tmp_path / "empty.db").touch()
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    malformed = CliRunner().invoke(cli, ["--db", url, "session", "show", "s0123456789abcdef0123\n"])
    well_formed = CliRunner().invoke(cli, ["--db", url, "session", "show", "s0123456789abcdef0123"])
    assert malformed.stderr == "error: unknown session 's0123456789abcdef0123\\n'\n"
    assert well_formed.stderr.startswith("error: database schema missing (no such table: game_sessions)")
    assert session_views.SESSION_ID_PATTERN.fullmatch(session_views.new_session_id())
