"""Session lifecycle stories with an in-process provider whose failures are scripted."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from transfer_wallet import fx, ledger
from transfer_wallet.errors import (
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidStateError,
    NotFoundError,
    OutcomeUnknownError,
    ProviderInsufficientFundsError,
    ProviderUnavailableError,
    RejectedError,
    ValidationError,
)
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import Discrepancy
from transfer_wallet.money import Money, currency
from transfer_wallet.play import PlayMirror, rounds_of
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import TRANSITIONS, SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

from session_switch import db  # noqa: F401  (sqlite, postgres with the server steps, postgres with the Python steps)

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
EUR = currency("EUR")


def eur(text: str) -> Money:
    return Money.parse(text, EUR, allow_zero=True)


@pytest.fixture
def acme():
    return InMemoryProvider(name="acme", currency_code="EUR", clock=lambda: T0)


@pytest.fixture
def manager(db, acme):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="dep-1")
    policy = SessionPolicy("EUR", idle_timeout_s=900, max_session_s=3600, stuck_after_attempts=3, retry_base_s=30)
    return SessionManager(db, {"acme": acme}, {"acme": policy}, clock=lambda: T0)


def balances(manager, player_id="P1") -> tuple[str, str]:
    balance = Wallet(manager.db).balance(player_id)
    return balance.available.format(), balance.locked.format()


def house(manager, provider="acme", ccy="EUR") -> int:
    with manager.db.engine.connect() as connection:
        account = ledger.account_by_code(connection, f"house:{provider}:{ccy}")
        return 0 if account is None else ledger.derived_balance(connection, account.id)


def discrepancies(manager) -> list:
    with manager.db.engine.connect() as connection:
        return connection.execute(select(Discrepancy.__table__)).all()


def test_the_transition_table_has_no_way_back_from_a_final_state():
    assert TRANSITIONS["closed"] == frozenset() and TRANSITIONS["failed"] == frozenset()
    assert "active" not in TRANSITIONS["closing"]


def test_a_session_locks_money_moves_it_in_and_brings_the_rest_back(manager, acme):
    session = manager.open_session("P1", "acme", "50.00", key="open-1", now=T0)
    assert (session.status, session.in_doubt) == ("active", False)
    assert balances(manager) == ("50.00", "50.00")
    assert acme.balance("P1") == eur("50.00")
    acme.play("P1", bet=eur("10.00"), win=eur("2.50"))  # the player loses 7.50 at the provider
    closed = manager.close_session(session.id, now=T0 + dt.timedelta(minutes=5))
    assert closed.status == "closed" and closed.amount_out == eur("42.50")
    assert balances(manager) == ("92.50", "0.00")
    assert house(manager) == 750  # the house won what the player lost
    assert acme.balance("P1") == eur("0.00")
    assert [t.direction for t in closed.transfers] == ["IN", "OUT"]
    assert check_ledger(manager.db).clean


def test_opening_again_with_the_same_key_returns_the_same_session(manager, acme):
    first = manager.open_session("P1", "acme", "20.00", key="open-1", now=T0)
    again = manager.open_session("P1", "acme", "20.00", key="open-1", now=T0)
    assert again.id == first.id
    assert balances(manager) == ("80.00", "20.00")
    assert len([c for c in acme.calls if c[0] == "transfer_in"]) == 1
    with pytest.raises(IdempotencyConflictError):
        manager.open_session("P1", "acme", "21.00", key="open-1", now=T0)


def test_only_one_open_session_per_player_and_provider(manager):
    manager.open_session("P1", "acme", "10.00", now=T0)
    with pytest.raises(InvalidStateError, match="already has 1 open session"):
        manager.open_session("P1", "acme", "10.00", now=T0)
    assert balances(manager) == ("90.00", "10.00")


def test_more_than_the_available_balance_cannot_be_locked(manager, acme):
    with pytest.raises(InsufficientFundsError):
        manager.open_session("P1", "acme", "100.01", now=T0)
    assert balances(manager) == ("100.00", "0.00")
    assert acme.calls == []


def test_a_definitive_refusal_returns_the_funds_and_keeps_the_reason(manager, acme):
    acme.fail_next(RejectedError("player blocked at provider"))
    session = manager.open_session("P1", "acme", "30.00", now=T0)
    assert session.status == "failed"
    assert "player blocked" in session.failure_reason
    assert session.transfers[0].status == "refused"
    assert balances(manager) == ("100.00", "0.00")
    assert check_ledger(manager.db).clean


def test_an_unknown_outcome_keeps_the_money_locked_until_the_provider_answers(manager, acme):
    acme.fail_next(OutcomeUnknownError("read timeout"), apply=True)  # applied, but we never heard
    session = manager.open_session("P1", "acme", "30.00", now=T0)
    assert (session.status, session.in_doubt) == ("opening", True)
    assert balances(manager) == ("70.00", "30.00")  # never refunded on a guess
    assert check_ledger(manager.db).clean
    report = manager.resolve_in_doubt(T0 + dt.timedelta(minutes=1))
    assert report.completed == 1
    resolved = manager.get(session.id)
    assert (resolved.status, resolved.in_doubt, resolved.game_balance) == ("active", False, eur("30.00"))
    assert acme.balance("P1") == eur("30.00")  # applied exactly once


def test_an_unknown_outcome_that_never_reached_the_provider_is_re_sent_with_the_same_id(manager, acme):
    acme.fail_next(ProviderUnavailableError("connection refused"))  # not applied
    session = manager.open_session("P1", "acme", "30.00", now=T0)
    assert session.in_doubt
    manager.resolve_in_doubt(T0 + dt.timedelta(minutes=1))
    assert manager.get(session.id).status == "active"
    sent = [c for c in acme.calls if c[0] == "transfer_in"]
    assert [c[1] for c in sent] == [f"{session.id}-in", f"{session.id}-in"]
    assert acme.balance("P1") == eur("30.00")


def test_in_doubt_transfers_wait_for_their_backoff(manager, acme):
    acme.fail_next(OutcomeUnknownError("lost"))
    session = manager.open_session("P1", "acme", "30.00", now=T0)
    assert manager.resolve_in_doubt(T0 + dt.timedelta(seconds=10)).examined == 0  # next attempt at +30 s
    assert manager.resolve_in_doubt(T0 + dt.timedelta(seconds=31)).completed == 1
    assert manager.get(session.id).status == "active"


def test_a_provider_that_stays_silent_makes_the_session_stuck_but_never_loses_money(manager, acme):
    acme.fail_next(OutcomeUnknownError("lost"), operations={"transfer_in", "transfer_status"}, times=10)
    session = manager.open_session("P1", "acme", "30.00", now=T0)
    later = T0
    for _ in range(3):
        later += dt.timedelta(hours=2)
        manager.resolve_in_doubt(later)
    stuck = manager.get(session.id)
    assert (stuck.status, stuck.in_doubt, stuck.stuck) == ("opening", True, True)
    assert balances(manager) == ("70.00", "30.00")
    assert [s.id for s in manager.list(stuck=True)] == [session.id]


def test_a_crash_after_locking_is_finished_by_the_in_doubt_job(manager, acme, db):
    # step 1 committed, then the process died before calling the provider
    step = db.transaction(lambda c: manager._open_step1(c, "P1", "acme", manager.policies["acme"], "25.00", "k-crash", "h", T0))
    session_id = step[0]
    assert manager.resolve_in_doubt(T0 + dt.timedelta(seconds=30)).examined == 0  # still within the grace period
    manager.resolve_in_doubt(T0 + dt.timedelta(minutes=2))
    assert manager.get(session_id).status == "active"
    assert acme.balance("P1") == eur("25.00")


def test_a_lost_transfer_out_is_settled_once_by_status(manager, acme):
    session = manager.open_session("P1", "acme", "40.00", now=T0)
    acme.play("P1", bet=eur("5.00"), win=eur("0.00"))
    acme.fail_next(OutcomeUnknownError("response lost"), apply=True)
    closing = manager.close_session(session.id, now=T0 + dt.timedelta(minutes=1))
    assert (closing.status, closing.in_doubt) == ("closing", True)
    assert balances(manager) == ("60.00", "40.00")
    manager.resolve_in_doubt(T0 + dt.timedelta(minutes=5))
    manager.resolve_in_doubt(T0 + dt.timedelta(minutes=10))  # nothing left to do: no double settle
    closed = manager.get(session.id)
    assert closed.status == "closed" and closed.amount_out == eur("35.00")
    assert balances(manager) == ("95.00", "0.00")
    assert house(manager) == 500
    assert check_ledger(manager.db).clean


def test_a_refused_transfer_out_is_retried_under_a_new_id_then_marked_stuck(manager, acme):
    session = manager.open_session("P1", "acme", "40.00", now=T0)
    acme.fail_next(RejectedError("round in progress"), times=3)
    manager.close_session(session.id, now=T0)
    later = T0
    for _ in range(2):
        later += dt.timedelta(hours=1)
        manager.expire_sessions(later)
    stuck = manager.get(session.id)
    assert (stuck.status, stuck.stuck) == ("closing", True)
    assert [t.id for t in stuck.transfers if t.direction == "OUT"] == [f"{session.id}-out{n}" for n in (1, 2, 3)]
    assert balances(manager) == ("60.00", "40.00")  # still locked: the money is at the provider
    manager.expire_sessions(later + dt.timedelta(hours=2))
    assert manager.get(session.id).status == "closed"
    assert balances(manager) == ("100.00", "0.00")


def test_closing_twice_or_with_the_same_key_is_safe_and_a_reused_key_conflicts(manager):
    first = manager.open_session("P1", "acme", "10.00", now=T0)
    manager.close_session(first.id, key="close-1", now=T0)
    assert manager.close_session(first.id, key="close-1", now=T0).status == "closed"
    second = manager.open_session("P1", "acme", "10.00", now=T0)
    with pytest.raises(IdempotencyConflictError):
        manager.close_session(second.id, key="close-1", now=T0)
    assert balances(manager) == ("90.00", "10.00")


def test_a_session_still_opening_cannot_be_closed(manager, acme):
    acme.fail_next(OutcomeUnknownError("lost"))
    session = manager.open_session("P1", "acme", "10.00", now=T0)
    with pytest.raises(InvalidStateError, match="still opening"):
        manager.close_session(session.id, now=T0)


def test_idle_and_maximum_length_timeouts_close_sessions(manager, acme):
    idle = manager.open_session("P1", "acme", "10.00", now=T0)
    assert manager.expire_sessions(T0 + dt.timedelta(seconds=899)).examined == 0
    report = manager.expire_sessions(T0 + dt.timedelta(seconds=900))
    assert report.closed == 1
    assert manager.get(idle.id).close_reason == "idle_timeout"
    busy = manager.open_session("P1", "acme", "10.00", now=T0 + dt.timedelta(hours=1))
    mirror = PlayMirror(manager.db)
    for minute in range(0, 61, 10):  # play every 10 minutes: never idle, but at most an hour
        acme_now = T0 + dt.timedelta(hours=1, minutes=minute)
        if minute < 60:
            mirror.bet(busy.id, f"b{minute}", f"r{minute}", "0.10", now=acme_now)
            acme.play("P1", bet=eur("0.10"), win=eur("0.00"))
    manager.expire_sessions(T0 + dt.timedelta(hours=1, minutes=59))
    assert manager.get(busy.id).status == "active"
    manager.expire_sessions(T0 + dt.timedelta(hours=2))
    closed = manager.get(busy.id)
    assert (closed.status, closed.close_reason) == ("closed", "max_length")
    assert not discrepancies(manager)
    assert check_ledger(manager.db).clean


def test_a_difference_between_mirrored_play_and_the_provider_is_a_discrepancy(manager, acme):
    session = manager.open_session("P1", "acme", "50.00", now=T0)
    mirror = PlayMirror(manager.db)
    mirror.bet(session.id, "bet-1", "round-1", "10.00", now=T0)
    mirror.win(session.id, "win-1", "round-1", "4.00", now=T0)
    acme.play("P1", bet=eur("10.00"), win=eur("5.00"))  # the provider paid 1.00 more than it told us
    closed = manager.close_session(session.id, now=T0)
    assert closed.amount_out == eur("45.00")  # the money that came back is what we book
    [found] = discrepancies(manager)
    assert (found.kind, found.expected_minor, found.actual_minor) == ("SESSION_CONSERVATION", 4400, 4500)
    assert "difference 1.00 EUR" in found.detail
    assert check_ledger(manager.db).clean


def test_sessions_in_another_currency_convert_at_the_stored_rate_in_the_operators_favour(db):
    fx.set_rate(db, "EUR", "USD", "1.0854", effective_at=T0 - dt.timedelta(days=1))
    fx.set_rate(db, "USD", "EUR", "0.9213", effective_at=T0 - dt.timedelta(days=1))
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="d1")
    usd = InMemoryProvider(name="dollarama", currency_code="USD", clock=lambda: T0)
    manager = SessionManager(db, {"dollarama": usd}, {"dollarama": SessionPolicy("USD")}, clock=lambda: T0)
    session = manager.open_session("P1", "dollarama", "10.00", now=T0)
    assert session.game_amount_in == Money.parse("10.85", "USD")  # 10.854 rounded down
    assert session.transfers[0].fx_rate == "1.0854"
    closed = manager.close_session(session.id, now=T0)
    assert closed.game_amount_out == Money.parse("10.85", "USD")
    assert closed.amount_out == eur("9.99")  # 10.85 * 0.9213 = 9.996 -> 9.99
    assert balances(manager) == ("99.99", "0.00")
    assert house(manager, "dollarama") == 1  # the round trip's rounding stays with the operator
    report = check_ledger(db)
    assert report.clean and report.totals == {"EUR": 0}


def test_amounts_that_buy_nothing_after_conversion_are_refused(db):
    fx.set_rate(db, "JPY", "EUR", "0.0062", effective_at=T0 - dt.timedelta(days=1))
    wallet = Wallet(db)
    wallet.create_player("J1", "JPY")
    wallet.deposit("J1", "1001", reference="d1")
    manager = SessionManager(db, {"acme": InMemoryProvider(name="acme")}, {"acme": SessionPolicy("EUR")}, clock=lambda: T0)
    with pytest.raises(ValidationError, match="buys nothing"):
        manager.open_session("J1", "acme", "1", now=T0)
    session = manager.open_session("J1", "acme", "1001", now=T0)  # 6.2062 EUR -> 6.20; 1 JPY residue booked
    assert session.amount_in.format() == "1000" and session.game_amount_in == eur("6.20")
    assert Wallet(db).balance("J1").available.format() == "0"
    assert check_ledger(db).clean


def test_the_session_history_lists_rounds(manager):
    session = manager.open_session("P1", "acme", "20.00", now=T0)
    mirror = PlayMirror(manager.db)
    mirror.bet(session.id, "b1", "r1", "2.00", game_id="slot-1", now=T0)
    mirror.win(session.id, "w1", "r1", "3.00", now=T0)
    mirror.bet(session.id, "b2", "r2", "1.00", game_id="slot-1", now=T0)
    history = rounds_of(manager.db, session.id)
    assert [(r["round_id"], r["status"], r["bet"], r["win"]) for r in history] == [
        ("r1", "settled", "2.00", "3.00"), ("r2", "open", "1.00", "0.00"),
    ]


def test_the_provider_refusing_for_insufficient_funds_fails_the_session(manager, acme):
    acme.fail_next(ProviderInsufficientFundsError("402"))
    assert manager.open_session("P1", "acme", "10.00", now=T0).status == "failed"
    assert balances(manager) == ("100.00", "0.00")


def test_with_several_sessions_per_player_a_close_withdraws_only_its_own_money(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="d1")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR", max_open_sessions=2)}, clock=lambda: T0)
    first = manager.open_session("P1", "acme", "30.00", now=T0)
    second = manager.open_session("P1", "acme", "20.00", now=T0)
    acme.play("P1", bet=eur("5.00"), win=eur("0.00"))
    PlayMirror(db).bet(first.id, "b1", "r1", "5.00", now=T0)
    closed = manager.close_session(first.id, now=T0)
    assert closed.game_amount_out == eur("25.00")
    assert acme.balance("P1") == eur("20.00")  # the second session's money stays at the provider
    assert manager.get(second.id).status == "active"
    assert balances(manager) == ("75.00", "20.00")
    assert check_ledger(db).clean


def test_the_players_own_session_length_limit_closes_the_session_first(manager, acme):
    from transfer_wallet import limits

    limits.set_limit(manager.db, "P1", "session_length", "30m", now=T0 - dt.timedelta(days=2))
    session = manager.open_session("P1", "acme", "10.00", now=T0)
    mirror = PlayMirror(manager.db)
    for minute in (10, 20):  # active play: the idle timeout never fires
        mirror.bet(session.id, f"b{minute}", f"r{minute}", "0.10", now=T0 + dt.timedelta(minutes=minute))
        acme.play("P1", bet=eur("0.10"), win=eur("0.00"))
    assert manager.expire_sessions(T0 + dt.timedelta(minutes=29)).examined == 0
    manager.expire_sessions(T0 + dt.timedelta(minutes=30))
    closed = manager.get(session.id)
    assert (closed.status, closed.close_reason) == ("closed", "player_limit")


def test_a_self_excluded_player_cannot_open_a_session(manager, acme):
    from transfer_wallet import limits
    from transfer_wallet.errors import LimitExceededError

    limits.set_limit(manager.db, "P1", "self_exclusion", "2027-01-01", now=T0)
    with pytest.raises(LimitExceededError, match="self-excluded until 2027-01-01"):
        manager.open_session("P1", "acme", "10.00", now=T0)
    assert balances(manager) == ("100.00", "0.00") and acme.calls == []


def test_with_a_frozen_clock_the_sweep_uses_now_and_closes_idle_sessions(db):
    from freezegun import freeze_time

    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "20.00", reference="d1")
    acme = InMemoryProvider(name="acme")
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR", idle_timeout_s=600, max_session_s=3600)})
    with freeze_time("2026-11-24 12:00:00") as frozen:
        session = manager.open_session("P1", "acme", "20.00")
        frozen.tick(dt.timedelta(seconds=599))
        assert manager.expire_sessions().examined == 0
        frozen.tick(dt.timedelta(seconds=1))
        assert manager.expire_sessions().closed == 1
    closed = manager.get(session.id)
    assert closed.closed_at == dt.datetime(2026, 11, 24, 12, 10, tzinfo=dt.timezone.utc)
    assert closed.close_reason == "idle_timeout"


def test_a_session_that_lost_everything_closes_without_a_provider_call(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "50.00", reference="d1")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR", max_open_sessions=2)}, clock=lambda: T0)
    session = manager.open_session("P1", "acme", "20.00", now=T0)
    acme.play("P1", bet=eur("20.00"), win=eur("0.00"))
    PlayMirror(db).bet(session.id, "b1", "r1", "20.00", now=T0)
    closed = manager.close_session(session.id, now=T0)
    assert (closed.status, closed.amount_out) == ("closed", eur("0.00"))
    assert [c[0] for c in acme.calls].count("transfer_out") == 0
    assert balances(manager) == ("30.00", "0.00") and house(manager) == 2000
    assert check_ledger(db).clean


def test_an_answer_in_another_currency_is_never_booked(manager, acme):
    from transfer_wallet.providers.protocol import Direction, TransferResult

    session = manager.open_session("P1", "acme", "30.00", now=T0)
    original = acme.transfer_out

    def wrong_currency(transfer_id, player_id, amount):
        original(transfer_id, player_id, amount)
        return TransferResult(transfer_id, "x", player_id, Direction.OUT, Money.parse("2000", "JPY"),
                              Money.parse("0", "JPY", allow_zero=True), T0)

    acme.transfer_out = wrong_currency
    closing = manager.close_session(session.id, now=T0)
    assert (closing.status, closing.in_doubt) == ("closing", True)
    assert balances(manager) == ("70.00", "30.00")
    assert [d.kind for d in discrepancies(manager)] == ["PROVIDER_ANSWER_MISMATCH"]
    acme.transfer_out = original
    manager.resolve_in_doubt(T0 + dt.timedelta(hours=1))  # the status says what really moved: 30.00 EUR
    assert manager.get(session.id).status == "closed"
    assert balances(manager) == ("100.00", "0.00")


def test_opening_with_the_same_amount_written_differently_is_the_same_request(manager):
    first = manager.open_session("P1", "acme", "20", key="open-1", now=T0)
    assert manager.open_session("P1", "acme", "20.00", key="open-1", now=T0).id == first.id
    assert manager.open_session("P1", "acme", eur("20.00"), key="open-1", now=T0).id == first.id


def test_a_session_extended_by_play_after_the_sweep_read_it_is_not_closed(manager):
    session = manager.open_session("P1", "acme", "20.00", now=T0)
    PlayMirror(manager.db).bet(session.id, "b1", "r1", "1.00", now=T0 + dt.timedelta(minutes=14))
    view = manager.close_session(session.id, reason="idle_timeout", now=T0 + dt.timedelta(minutes=15))
    assert view.status == "active"  # the sweep's idle deadline moved on


def test_closing_a_session_whose_provider_client_is_gone_writes_nothing(manager):
    """The provider keeps its policy but has no client: the close is refused before it writes
    (on PostgreSQL the server step used to commit CLOSING and a PENDING transfer-out first)."""
    session = manager.open_session("P1", "acme", "30.00", key="k1")
    manager.providers = {}
    with pytest.raises(NotFoundError, match="unknown provider 'acme'"):
        manager.close_session(session.id, key="c1")
    after = manager.get(session.id)
    assert (after.status, after.close_reason) == ("active", None)
    assert [(t.direction, t.status) for t in after.transfers] == [("IN", "completed")]
    assert balances(manager) == ("70.00", "30.00")


def test_a_naive_now_is_refused_before_any_step_on_every_path(manager):
    naive = dt.datetime(2026, 11, 24, 12, 0)  # meant as UTC; PostgreSQL would read it in its own TimeZone
    with pytest.raises(ValueError, match="now must be a timezone-aware datetime"):
        manager.open_session("P1", "acme", "10.00", key="k-naive", now=naive)
    assert manager.list(player_id="P1") == [] and balances(manager) == ("100.00", "0.00")
    session = manager.open_session("P1", "acme", "10.00")
    for step in (lambda: manager.close_session(session.id, now=naive), lambda: manager.expire_sessions(naive),
                 lambda: manager.resolve_in_doubt(naive)):
        with pytest.raises(ValueError, match="now must be a timezone-aware datetime"):
            step()
    assert manager.get(session.id).status == "active" and balances(manager) == ("90.00", "10.00")


def test_an_aware_now_in_another_zone_is_kept_as_the_same_instant(manager):
    tokyo = dt.timezone(dt.timedelta(hours=9))
    session = manager.open_session("P1", "acme", "10.00", now=T0.astimezone(tokyo))
    assert (session.opened_at, session.deadline_at) == (T0, T0 + dt.timedelta(seconds=900))
    assert session.opened_at.utcoffset() == dt.timedelta(0)
