"""``tw simulate`` runs on one clock: every time it writes is consistent with every other and none is after now.

A run with faults (lost answers leave transfers in doubt, a share of sessions is left
to time out) against the in-process simulator, on SQLite and PostgreSQL; then the
times it wrote are read back from the database and checked against each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cli import cli
from transfer_wallet.config import provider_config
from transfer_wallet.db import Database, open_database
from transfer_wallet.errors import ValidationError
from transfer_wallet.models import GameRound, GameSession, PlayTransaction, Player, Transfer, utc_now
from transfer_wallet.simulator.clock import RunClock
from transfer_wallet.simulator.loadgen import SimulationPlan, prepare_clock, run_simulation

PROVIDERS = Path(__file__).resolve().parents[1] / "sample_data" / "providers.toml"
FAULTS = ("transfer:lost=0.2", "transfer:500=0.1")


def _rows(db: Database, model: Any, session_ids: list[str]) -> list[Any]:
    table = model.__table__
    column = table.c.id if model is GameSession else table.c.session_id
    with db.engine.connect() as connection:
        return list(connection.execute(select(table).where(column.in_(session_ids))).all())


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _assert_consistent(db: Database, session_ids: list[str], wall_now: dt.datetime) -> None:
    sessions = {s.id: s for s in _rows(db, GameSession, session_ids)}
    assert len(sessions) == len(session_ids)
    for s in sessions.values():
        opened, last, deadline = _utc(s.opened_at), _utc(s.last_activity_at), _utc(s.deadline_at)
        assert opened <= last <= deadline, (s.id, opened, last, deadline)
        if s.closed_at is not None:
            assert last <= _utc(s.closed_at) <= wall_now, (s.id, last, s.closed_at)
    for model, columns in ((Transfer, ("created_at", "updated_at")), (GameRound, ("started_at", "updated_at")),
                           (PlayTransaction, ("created_at",))):
        for row in _rows(db, model, session_ids):
            session = sessions[row.session_id]
            end = _utc(session.closed_at) if session.closed_at is not None else wall_now
            for name in columns:
                when = _utc(getattr(row, name))
                assert _utc(session.opened_at) <= when <= end <= wall_now, (model.__name__, name, row, session.id)


def test_a_run_with_faults_writes_times_in_order_and_none_after_now(db: Database, tmp_path: Path) -> None:
    config = dataclasses.replace(provider_config("acme", PROVIDERS), max_attempts=1)  # a lost answer: in doubt
    start = (utc_now() - dt.timedelta(days=1)).replace(microsecond=0)
    plan = SimulationPlan(players=4, sessions=16, seed=3, faults=FAULTS, timeout_share=0.3, rounds_per_session=3,
                          start=start, session_gap_s=120)
    summary = run_simulation(db, config, plan, store_dir=tmp_path)
    wall_now = utc_now()
    assert summary.conserved and summary.ledger_clean, summary.as_dict()
    assert set(summary.by_status) <= {"closed", "failed"}, summary.as_dict()
    assert any("in doubt" in k for k in summary.failures), summary.failures  # the faults really bit
    assert summary.started_at == start and summary.ended_at is not None and summary.ended_at <= wall_now
    _assert_consistent(db, summary.session_ids, wall_now)
    opened = [_utc(s.opened_at) for s in _rows(db, GameSession, summary.session_ids)]
    assert min(opened) == start and max(opened) < start + dt.timedelta(hours=2)  # the day is where --start put it


def test_a_second_run_on_the_same_database_does_not_collide(db: Database, tmp_path: Path) -> None:
    config = provider_config("acme", PROVIDERS)
    plan = SimulationPlan(players=2, sessions=4, seed=5, rounds_per_session=3, timeout_share=0)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = run_simulation(db, config, plan, store_dir=tmp_path / "one")
    second = run_simulation(db, config, plan, store_dir=tmp_path / "two")  # a fresh store numbers rounds from r1
    assert first.run_id != second.run_id
    assert first.by_status == second.by_status == {"closed": 4}
    assert not second.failures and second.ledger_clean, second.as_dict()


def test_the_clock_moves_forward_only_and_stops_at_its_limit() -> None:
    t0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
    clock = RunClock(t0, limit=t0 + dt.timedelta(minutes=10))
    assert clock.advance(60) == t0 + dt.timedelta(minutes=1)
    assert clock.advance_to(t0) == t0 + dt.timedelta(minutes=1)  # never backwards
    assert clock.advance(3600) == t0 + dt.timedelta(minutes=10) and clock.at_limit
    with pytest.raises(ValidationError, match="future"):
        RunClock(t0 + dt.timedelta(minutes=11), limit=t0 + dt.timedelta(minutes=10))


def test_a_start_too_late_for_the_plan_is_refused_by_the_library() -> None:
    config = provider_config("acme", PROVIDERS)
    now = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
    plan = SimulationPlan(sessions=100, session_gap_s=60, start=now - dt.timedelta(minutes=30))
    with pytest.raises(ValidationError, match="would run past now"):
        prepare_clock(config, plan, now=now)
    early = SimulationPlan(sessions=100, session_gap_s=60, start=now - dt.timedelta(hours=3))
    assert prepare_clock(config, early, now=now).start == now - dt.timedelta(hours=3)


def test_tw_simulate_refuses_a_late_start_as_a_usage_error_and_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    start = (utc_now() - dt.timedelta(minutes=5)).isoformat()
    result = CliRunner().invoke(cli, ["--db", url, "--providers", str(PROVIDERS), "simulate", "--provider", "acme",
                                      "--sessions", "50", "--start", start])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --start") and result.output.count("\n") == 1
    assert "would run past now" in result.output
    assert not (tmp_path / "tw.db").exists() or _players(url) == 0


def test_tw_simulate_refuses_a_start_without_offset(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'tw.db'}", "--providers", str(PROVIDERS),
                                      "simulate", "--provider", "acme", "--start", "2026-11-24T00:00:00"])
    assert result.exit_code == 2 and "UTC offset" in result.output, result.output


def _players(url: str) -> int:
    database = open_database(url)
    try:
        with database.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(Player.__table__)).scalar_one())
    except Exception:  # no schema: nothing was written
        return 0
    finally:
        database.dispose()
