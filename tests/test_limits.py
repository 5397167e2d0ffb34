"""Responsible-gaming limits as a player lives them: set, cooled off, refused, shown.

Every test runs on SQLite and (with TW_TEST_POSTGRES_URL) PostgreSQL. The clock is
frozen at T0 = 2026-11-24 12:00 UTC unless a story moves it.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text

from transfer_wallet.errors import LimitExceededError, NotFoundError, ValidationError
from transfer_wallet.limits import check_transfer_in, limits_for, session_length_limit_s, set_limit, set_limits
from transfer_wallet.models import GameSession, utc_now
from transfer_wallet.money import Money
from transfer_wallet.wallet import Wallet

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def player(db):
    """The database with player P1 (EUR) and no limits."""
    Wallet(db).create_player("P1", "EUR")
    return db


def eur(amount: str) -> Money:
    return Money.parse(amount, "EUR", allow_zero=True)


def add_session(db, session_id, *, status, amount_in, opened_at, amount_out=None, closed_at=None):
    """A game_sessions row of P1 as the session manager would leave it (amounts in EUR)."""
    out_minor = eur(amount_out).amount_minor if amount_out is not None else None
    row = {
        "id": session_id, "player_id": "P1", "provider": "acme", "status": status,
        "wallet_currency": "EUR", "game_currency": "EUR",
        "amount_in_minor": eur(amount_in).amount_minor, "game_amount_in_minor": eur(amount_in).amount_minor,
        "amount_out_minor": out_minor, "game_amount_out_minor": out_minor,
        "open_key": f"open:{session_id}", "open_request_hash": "0" * 64,
        "idle_timeout_s": 900, "max_session_s": 14_400,
        "opened_at": opened_at, "last_activity_at": closed_at or opened_at, "deadline_at": opened_at + 4 * HOUR,
        "closed_at": closed_at,
    }
    db.transaction(lambda connection: connection.execute(insert(GameSession.__table__).values(**row)))


def check(db, amount: str, at: dt.datetime | None = None) -> None:
    """Ask whether P1 may transfer ``amount`` EUR in, as the session manager does."""
    when = at or utc_now()
    db.transaction(lambda connection: check_transfer_in(connection, "P1", eur(amount).amount_minor, now=when))


def limit_rows(db) -> int:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT COUNT(*) FROM player_limits")).scalar_one()


# -- cooling-off ---------------------------------------------------------------------------------


def test_without_limits_any_transfer_in_is_allowed(player):
    check(player, "1000000.00", T0)
    assert limits_for(player, "P1", now=T0).as_dict()["remaining"] == {}


def test_lowering_a_limit_counts_at_once_and_raising_it_only_after_24_hours(player):
    with freeze_time(T0) as clock:
        first = set_limit(player, "P1", "transfer_in_day", "100.00")
        assert (first.old_value, first.new_value, first.immediate) == (None, eur("100.00"), True)
        lowered = set_limit(player, "P1", "transfer_in_day", "40.00")
        assert (lowered.old_value, lowered.immediate, lowered.effective_from) == (eur("100.00"), True, T0)

        raised = set_limit(player, "P1", "transfer_in_day", "250.00")
        assert (raised.old_value, raised.new_value, raised.immediate) == (eur("40.00"), eur("250.00"), False)
        assert raised.effective_from == dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        shown = limits_for(player, "P1").as_dict()
        assert shown["limits"]["transfer_in_day"] == "40.00"
        assert shown["pending"] == [
            {"kind": "transfer_in_day", "value": "250.00", "effective_from": "2026-11-25T12:00:00+00:00"},
        ]

        clock.move_to(T0 + 23 * HOUR + 59 * MINUTE)
        with pytest.raises(LimitExceededError, match="^transfer-in limit per day reached: 40.00 EUR left of 40.00 EUR$"):
            check(player, "40.01")
        clock.move_to(T0 + 24 * HOUR)
        check(player, "250.00")
        assert limits_for(player, "P1").as_dict()["pending"] == []


def test_removing_a_limit_also_waits_out_the_cooling_off(player):
    with freeze_time(T0) as clock:
        set_limit(player, "P1", "loss_week", "10.00")
        removed = set_limit(player, "P1", "loss_week", None)
        assert (removed.new_value, removed.immediate, removed.effective_from) == (None, False, T0 + 24 * HOUR)
        clock.move_to(T0 + 23 * HOUR + 59 * MINUTE)
        with pytest.raises(LimitExceededError) as refused:
            check(player, "10.01")
        assert (refused.value.limit, refused.value.remaining_minor) == ("loss_week", 1000)
        clock.move_to(T0 + 24 * HOUR)
        check(player, "10.01")
        assert limits_for(player, "P1").in_force["loss_week"] is None


def test_a_lowering_cancels_a_raise_still_pending(player):
    with freeze_time(T0) as clock:
        set_limit(player, "P1", "transfer_in_week", "100.00")
        set_limit(player, "P1", "transfer_in_week", "500.00")
        clock.move_to(T0 + HOUR)
        assert set_limit(player, "P1", "transfer_in_week", "50.00").immediate
        clock.move_to(T0 + 25 * HOUR)
        assert limits_for(player, "P1").in_force["transfer_in_week"] == eur("50.00")
        assert limits_for(player, "P1").pending == ()
        with pytest.raises(LimitExceededError, match="50.00 EUR left of 50.00 EUR"):
            check(player, "50.01")


def test_self_exclusion_refuses_with_its_date_and_ends_by_itself(player):
    with freeze_time(T0) as clock:
        set_limits(player, "P1", {"self_exclusion": "2026-12-01", "transfer_in_day": "0"})
        with pytest.raises(LimitExceededError) as refused:
            check(player, "0.01")
        assert str(refused.value) == "self-excluded until 2026-12-01T00:00:00+00:00"
        assert (refused.value.limit, refused.value.remaining_minor) == ("self_exclusion", None)

        clock.move_to(dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
        with pytest.raises(LimitExceededError, match="self-excluded"):
            check(player, "0.01")
        clock.move_to(dt.datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
        # The exclusion is over; the zero transfer-in limit ("nothing") is what refuses now.
        with pytest.raises(LimitExceededError, match="^transfer-in limit per day reached: 0.00 EUR left of 0.00 EUR$"):
            check(player, "0.01")
        assert limits_for(player, "P1").in_force["self_exclusion"] is None


def test_extending_a_self_exclusion_counts_at_once_and_ending_it_early_waits_24_hours(player):
    with freeze_time(T0) as clock:
        set_limit(player, "P1", "self_exclusion", "2027-01-01")
        extended = set_limit(player, "P1", "self_exclusion", "2027-06-01T12:00:00+02:00")
        assert extended.immediate and extended.new_value == dt.datetime(2027, 6, 1, 10, 0, tzinfo=UTC)
        shortened = set_limit(player, "P1", "self_exclusion", "2026-12-01T08:00:00")  # naive: UTC
        assert (shortened.immediate, shortened.effective_from) == (False, T0 + 24 * HOUR)
        ended = set_limit(player, "P1", "self_exclusion", None)  # replaces the pending shortening
        assert (ended.immediate, ended.effective_from) == (False, T0 + 24 * HOUR)
        assert [(p.kind, p.value) for p in limits_for(player, "P1").pending] == [("self_exclusion", None)]

        clock.move_to(T0 + 23 * HOUR + 59 * MINUTE)
        with pytest.raises(LimitExceededError, match="^self-excluded until 2027-06-01T10:00:00\\+00:00$"):
            check(player, "5.00")
        clock.move_to(T0 + 24 * HOUR)
        check(player, "5.00")


def test_ending_a_self_exclusion_that_ends_sooner_than_the_cooling_off_waits_only_for_its_own_end(player):
    with freeze_time(T0) as clock:
        set_limit(player, "P1", "self_exclusion", "2026-11-24T22:00:00Z")
        ended = set_limit(player, "P1", "self_exclusion", None)
        assert (ended.immediate, ended.effective_from) == (False, dt.datetime(2026, 11, 24, 22, 0, tzinfo=UTC))
        clock.move_to(dt.datetime(2026, 11, 24, 21, 59, tzinfo=UTC))
        with pytest.raises(LimitExceededError, match="self-excluded until 2026-11-24T22:00:00"):
            check(player, "5.00")
        clock.move_to(dt.datetime(2026, 11, 24, 22, 0, tzinfo=UTC))
        check(player, "5.00")


# -- transfer-in and loss windows -----------------------------------------------------------------


def test_transfer_in_per_day_counts_only_the_last_24_hours_and_ignores_failed_sessions(player):
    set_limits(player, "P1", {"transfer_in_day": "100.00", "transfer_in_week": "160.00"}, now=T0)
    add_session(player, "s-two-days-ago", status="closed", amount_in="80.00", amount_out="80.00",
                opened_at=T0 - 48 * HOUR, closed_at=T0 - 47 * HOUR)
    add_session(player, "s-exactly-24h-ago", status="closed", amount_in="10.00", amount_out="10.00",
                opened_at=T0 - 24 * HOUR, closed_at=T0 - 23 * HOUR)
    add_session(player, "s-failed", status="failed", amount_in="30.00", opened_at=T0 - 2 * HOUR)
    add_session(player, "s-an-hour-ago", status="closed", amount_in="50.00", amount_out="50.00",
                opened_at=T0 - HOUR, closed_at=T0 - 30 * MINUTE)
    usage = limits_for(player, "P1", now=T0).as_dict()["usage"]
    assert (usage["transfer_in_day"], usage["transfer_in_week"]) == ("50.00", "140.00")

    check(player, "20.00", T0)
    with pytest.raises(LimitExceededError) as refused:
        check(player, "50.01", T0)  # the day is checked before the week
    assert str(refused.value) == "transfer-in limit per day reached: 50.00 EUR left of 100.00 EUR"
    assert (refused.value.limit, refused.value.remaining_minor) == ("transfer_in_day", 5000)
    with pytest.raises(LimitExceededError) as refused:
        check(player, "20.01", T0)
    assert str(refused.value) == "transfer-in limit per week reached: 20.00 EUR left of 160.00 EUR"
    assert (refused.value.limit, refused.value.remaining_minor) == ("transfer_in_week", 2000)


def test_loss_limit_counts_losses_minus_wins_plus_everything_in_open_sessions(player):
    set_limit(player, "P1", "loss_day", "100.00", now=T0)
    add_session(player, "s-lost-60", status="closed", amount_in="80.00", amount_out="20.00",
                opened_at=T0 - 3 * HOUR, closed_at=T0 - 2 * HOUR)
    add_session(player, "s-won-20", status="closed", amount_in="50.00", amount_out="70.00",
                opened_at=T0 - 2 * HOUR, closed_at=T0 - HOUR)
    add_session(player, "s-still-open", status="active", amount_in="30.00", opened_at=T0 - 10 * MINUTE)
    add_session(player, "s-lost-yesterday", status="closed", amount_in="500.00", amount_out="0.00",
                opened_at=T0 - 27 * HOUR, closed_at=T0 - 26 * HOUR)
    add_session(player, "s-failed", status="failed", amount_in="40.00", opened_at=T0 - 5 * MINUTE)

    # 60 lost - 20 won + 30 at stake = 70 counted: 30 left.
    check(player, "30.00", T0)
    with pytest.raises(LimitExceededError) as refused:
        check(player, "30.01", T0)
    assert str(refused.value) == "loss limit per day reached: 30.00 EUR left of 100.00 EUR"
    assert (refused.value.limit, refused.value.remaining_minor) == ("loss_day", 3000)


def test_limits_show_what_is_in_force_pending_and_used(player):
    set_limits(player, "P1", {"loss_day": "100.00", "session_length": "2h", "self_exclusion": "2027-01-01"},
               now=T0 - 48 * HOUR)
    set_limit(player, "P1", "loss_day", "150.00", now=T0 - HOUR)
    add_session(player, "s-lost-60", status="closed", amount_in="80.00", amount_out="20.00",
                opened_at=T0 - 3 * HOUR, closed_at=T0 - 2 * HOUR)
    add_session(player, "s-won-500", status="closed", amount_in="100.00", amount_out="600.00",
                opened_at=T0 - 50 * HOUR, closed_at=T0 - 49 * HOUR)
    add_session(player, "s-still-open", status="closing", amount_in="30.00", opened_at=T0 - 10 * MINUTE)

    assert limits_for(player, "P1", now=T0).as_dict() == {
        "player_id": "P1",
        "currency": "EUR",
        "as_of": "2026-11-24T12:00:00+00:00",
        "limits": {
            "transfer_in_day": None, "transfer_in_week": None, "transfer_in_month": None,
            "loss_day": "100.00", "loss_week": None, "loss_month": None,
            "session_length": 7200, "self_exclusion": "2027-01-01T00:00:00+00:00",
        },
        "pending": [{"kind": "loss_day", "value": "150.00", "effective_from": "2026-11-25T11:00:00+00:00"}],
        "usage": {
            "transfer_in_day": "110.00", "transfer_in_week": "210.00", "transfer_in_month": "210.00",
            "loss_day": "60.00", "loss_week": "-440.00", "loss_month": "-440.00",
            "open_exposure": "30.00",
        },
        "remaining": {"loss_day": "10.00"},
    }


def test_a_loss_limit_already_passed_leaves_nothing_never_less(player):
    set_limit(player, "P1", "loss_month", "50.00", now=T0 - 10 * HOUR)
    add_session(player, "s-lost-80", status="closed", amount_in="80.00", amount_out="0.00",
                opened_at=T0 - 3 * HOUR, closed_at=T0 - 2 * HOUR)
    with pytest.raises(LimitExceededError) as refused:
        check(player, "0.01", T0)
    assert str(refused.value) == "loss limit per month reached: 0.00 EUR left of 50.00 EUR"
    assert refused.value.remaining_minor == 0
    assert limits_for(player, "P1", now=T0).remaining("loss_month") == eur("0.00")


@pytest.mark.parametrize(("duration", "seconds"), [("90m", 5400), ("2h", 7200), ("3600s", 3600), ("3600", 3600), ("7d", 604_800)])
def test_session_length_reads_minutes_hours_days_and_seconds(player, duration, seconds):
    def limit_s():
        return player.transaction(lambda connection: session_length_limit_s(connection, "P1", now=T0))

    assert limit_s() is None
    set_limit(player, "P1", "session_length", duration, now=T0)
    assert limit_s() == seconds


# -- the cooling-off as an invariant ------------------------------------------------------------

REQUESTS = st.lists(
    st.tuples(st.integers(0, 48 * 60), st.none() | st.integers(0, 500)),  # (minutes after the last, EUR or no limit)
    min_size=1, max_size=6,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=REQUESTS)
def test_a_looser_limit_never_counts_within_24_hours_and_the_last_request_always_does_after(player, requests):
    with player.engine.begin() as connection:
        connection.execute(text("DELETE FROM player_limits"))
    times, asked = [], []
    at = T0
    for gap_minutes, major in requests:
        at += dt.timedelta(minutes=gap_minutes)
        value = None if major is None else f"{major}.00"
        set_limit(player, "P1", "loss_day", value, now=at)
        times.append(at)
        asked.append(None if major is None else major * 100)

    def looseness(minor):  # None is no limit: looser than any amount
        return float("inf") if minor is None else minor

    probes = {t + offset for t in times for offset in (dt.timedelta(0), 23 * HOUR + 59 * MINUTE, 24 * HOUR)}
    for probe in sorted(probes):
        in_force = limits_for(player, "P1", now=probe).in_force["loss_day"]
        minor = None if in_force is None else in_force.amount_minor
        recent = [v for t, v in zip(times, asked) if probe - 24 * HOUR < t <= probe]
        assert all(looseness(minor) <= looseness(v) for v in recent), (probe, minor, recent)
        last = max(i for i, t in enumerate(times) if t <= probe)
        if probe >= times[last] + 24 * HOUR:
            assert minor == asked[last], (probe, minor, asked[last])


# -- bad input --------------------------------------------------------------------------------------

BAD_VALUES = [
    ("transfer_in_day", "-5", "transfer_in_day limit: amount must be positive, got '-5'"),
    ("loss_week", "abc", "loss_week limit: amount 'abc' is not a plain decimal"),
    ("loss_day", "1.234", "EUR allows 2"),
    ("loss_month", "NaN", "not a finite number"),
    ("bet_day", "10.00", "unknown limit kind 'bet_day'"),
    ("self_exclusion", "2026-11-01", "self-exclusion end 2026-11-01T00:00:00+00:00 is not in the future"),
    ("self_exclusion", "next week", "is not an ISO 8601 date"),
    ("session_length", "0", "session length '0' must be longer than 0 seconds"),
    ("session_length", "8d", "session length '8d' is longer than 7 days"),
    ("session_length", "1.5h", "is not a duration like 90m, 2h or 3600s"),
]


@pytest.mark.parametrize(("kind", "value", "message"), BAD_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_a_bad_limit_is_one_clear_line_and_writes_nothing(player, kind, value, message):
    with pytest.raises(ValidationError) as refused:
        set_limit(player, "P1", kind, value, now=T0)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert limit_rows(player) == 0


def test_several_limits_at_once_are_all_or_nothing(player):
    with pytest.raises(ValidationError, match="session length"):
        set_limits(player, "P1", {"loss_day": "10.00", "transfer_in_week": "50.00", "session_length": "0"}, now=T0)
    assert limit_rows(player) == 0
    changes = set_limits(player, "P1", {"session_length": "45m", "loss_day": "10.00"}, now=T0)
    assert [c.kind for c in changes] == ["loss_day", "session_length"]
    assert limit_rows(player) == 2


def test_an_unknown_player_is_not_found_and_nothing_is_written(db):
    with pytest.raises(NotFoundError, match="^unknown player 'NOBODY'$"):
        set_limit(db, "NOBODY", "loss_day", "10.00", now=T0)
    with pytest.raises(NotFoundError, match="^unknown player 'NOBODY'$"):
        limits_for(db, "NOBODY", now=T0)
    assert limit_rows(db) == 0


# -- command line -------------------------------------------------------------------------------------


@pytest.fixture
def tw(player):
    """Run ``tw --db <test database> ARGS`` with P1 created and the clock frozen at T0."""
    from cli import cli
    from commands.limits import limits

    if "limits" not in cli.commands:  # until cli.GROUPS registers it
        cli.add_command(limits, "limits")
    url = player.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()

    def run(*args: str, columns: int = 80):
        with freeze_time(T0):
            return runner.invoke(cli, ["--db", url, *args], catch_exceptions=False, env={"COLUMNS": str(columns)})

    run.db = player
    return run


def test_every_limits_command_has_help_with_an_example(tw):
    for args in (("limits",), ("limits", "set"), ("limits", "show")):
        result = tw(*args, "--help")
        assert result.exit_code == 0 and "Example:" in result.output, args


def test_an_operator_sets_several_limits_at_once_and_shows_them(tw):
    result = tw("limits", "set", "P1", "--transfer-in-day", "50.00", "--loss-week", "100.00",
                "--session-length", "2h", "--self-exclude-until", "2027-01-01")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "P1 transfer_in_day: none -> 50.00 EUR, in force now",
        "P1 loss_week: none -> 100.00 EUR, in force now",
        "P1 session_length: none -> 2h, in force now",
        "P1 self_exclusion: none -> 2027-01-01 00:00:00 UTC, in force now",
    ]
    raised = json.loads(tw("--json", "limits", "set", "P1", "--transfer-in-day", "80.00", "--remove", "loss-week").output)
    assert [(c["kind"], c["old_value"], c["new_value"], c["immediate"], c["effective_from"]) for c in raised["changes"]] == [
        ("transfer_in_day", "50.00", "80.00", False, "2026-11-25T12:00:00+00:00"),
        ("loss_week", "100.00", None, False, "2026-11-25T12:00:00+00:00"),
    ]

    shown = json.loads(tw("--json", "limits", "show", "P1").output)
    assert shown["limits"]["transfer_in_day"] == "50.00" and shown["limits"]["session_length_s"] == 7200
    assert [p["kind"] for p in shown["pending"]] == ["transfer_in_day", "loss_week"]
    table = tw("limits", "show", "P1", columns=120).output
    assert "limits of P1 in EUR at 2026-11-24 12:00:00 UTC" in table  # a pipe: aligned text, no box
    assert "transfer_in_day    50.00                       0.00   50.00  80.00 from 2026-11-25 12:00:00 UTC" in table
    assert "self_exclusion     2027-01-01 00:00:00 UTC" in table


CLI_BAD_INPUTS = [
    (("--loss-day", "-5"), "amount must be positive"),
    (("--transfer-in-week", "10.00", "--session-length", "0"), "must be longer than 0 seconds"),
    (("--self-exclude-until", "2020-01-01"), "not in the future"),
    (("--remove", "bets"), "unknown limit kind 'bets'"),
]


@pytest.mark.parametrize(("args", "message"), CLI_BAD_INPUTS, ids=[" ".join(a) for a, _ in CLI_BAD_INPUTS])
def test_bad_limits_on_the_command_line_are_one_line_exit_1_and_write_nothing(tw, args, message):
    result = tw("limits", "set", "P1", *args)
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert limit_rows(tw.db) == 0


def test_limits_of_an_unknown_player_is_one_line_exit_1(tw):
    result = tw("limits", "show", "NOBODY")
    assert result.exit_code == 1 and result.stderr.strip() == "error: unknown player 'NOBODY'"


def test_limits_set_without_a_limit_or_with_a_contradiction_is_a_usage_error(tw):
    assert tw("limits", "set", "P1").exit_code == 2
    assert tw("limits", "set", "P1", "--loss-day", "5.00", "--remove", "loss-day").exit_code == 2
    assert limit_rows(tw.db) == 0


def test_the_checks_inside_an_open_build_no_statement_per_call(player, monkeypatch):
    """check_transfer_in and session_length_limit_s run the statements built at import (issue 11, item 3):
    with SQLAlchemy's builders taken away from the module they still refuse, allow and read as before."""
    from transfer_wallet import limits

    set_limits(player, "P1", {"transfer_in_day": "30.00", "loss_week": "100.00", "session_length": "2h"}, now=T0)
    add_session(player, "s1", status="closed", amount_in="20.00", amount_out="5.00", opened_at=T0 - HOUR,
                closed_at=T0 - MINUTE)

    def built_per_call(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a statement was built per call")

    for name in ("select", "func", "case", "and_", "or_", "bindparam"):
        monkeypatch.setattr(limits, name, built_per_call)
    assert player.transaction(lambda c: check_transfer_in(c, "P1", eur("10.00").amount_minor, now=T0)) == 7200
    with pytest.raises(LimitExceededError, match="transfer-in limit per day reached: 10.00 EUR left of 30.00 EUR"):
        player.transaction(lambda c: check_transfer_in(c, "P1", eur("10.01").amount_minor, now=T0))
    assert player.transaction(lambda c: session_length_limit_s(c, "P1", now=T0)) == 7200
