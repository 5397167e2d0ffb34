"""The session steps as server-side functions (PostgreSQL, migration 0008): one call per step, every branch.

The stories of ``test_sessions.py`` and friends run on both databases, so on PostgreSQL
they already go through the functions. Here: the common path is four statements and
no fallback; each branch of each function (replay, conflict, too many open sessions,
short funds, limits, refusal refund, in doubt, a refused transfer-out, settlements
that win, lose and return nothing, a zero settlement without a provider call) does
what the Python step does, with the same errors; two connections finishing one
transfer book it once; the SQL helpers equal their Python twins.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from test_session_concurrency import _race
from transfer_wallet import ledger, limits, migrations
from transfer_wallet.db import open_database
from transfer_wallet.errors import (
    ConcurrencyError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidStateError,
    LimitExceededError,
    NotFoundError,
    OutcomeUnknownError,
    RejectedError,
)
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import Entry, Transfer
from transfer_wallet.money import Money
from transfer_wallet.play import PlayMirror
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.session_views import to_view
from transfer_wallet.sessions import SessionManager, SessionPolicy, server_steps
from transfer_wallet.wallet import Wallet

pytestmark = pytest.mark.postgres
T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def eur(text: str) -> Money:
    return Money.parse(text, "EUR", allow_zero=True)


def setup(db, policy: SessionPolicy | None = None, deposit: str = "100.00"):  # type: ignore[no-untyped-def]
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", deposit, reference="d1")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": policy or SessionPolicy("EUR")}, clock=lambda: T0)
    server_steps.FALLBACKS.clear()
    return wallet, acme, manager


def balances(wallet: Wallet) -> tuple[str, str]:
    balance = wallet.balance("P1")
    return balance.available.format(), balance.locked.format()


def house(db) -> int | None:  # type: ignore[no-untyped-def]
    with db.engine.connect() as connection:
        account = ledger.account_by_code(connection, "house:acme:EUR")
        return None if account is None else ledger.derived_balance(connection, account.id)


def test_an_open_and_close_is_four_calls_in_autocommit_and_nothing_else(pg_db, monkeypatch):
    wallet, acme, manager = setup(pg_db)
    manager.close_session(manager.open_session("P1", "acme", "1.00").id)  # the player's accounts are now cached
    statements: list[tuple[str, bool]] = []
    commits: list[bool] = []
    execute, commit = psycopg.Cursor.execute, psycopg.Connection.commit

    def recorded_execute(cursor, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        statements.append((str(query).split("(")[0], cursor.connection.autocommit))
        return execute(cursor, query, *args, **kwargs)

    def recorded_commit(connection):  # type: ignore[no-untyped-def]
        commits.append(True)
        return commit(connection)

    monkeypatch.setattr(psycopg.Cursor, "execute", recorded_execute)
    monkeypatch.setattr(psycopg.Connection, "commit", recorded_commit)
    closed = manager.close_session(manager.open_session("P1", "acme", "10.00").id)
    monkeypatch.undo()
    assert statements == [  # all on the driver, in autocommit: no BEGIN, no COMMIT
        ("SELECT outcome, reason FROM tw_session_open", True),
        ("SELECT outcome, reason, view FROM tw_transfer_applied", True),
        ("SELECT outcome, reason, out_transfer_id, out_provider, out_player_id, out_game_currency, "
         "out_game_amount_minor, view FROM tw_session_close_intent", True),
        ("SELECT outcome, reason, view FROM tw_transfer_applied", True),
    ]
    assert commits == []
    assert closed.status == "closed" and closed.amount_out == eur("10.00")
    assert [t.status for t in closed.transfers] == ["completed", "completed"]
    assert balances(wallet) == ("100.00", "0.00")
    assert server_steps.FALLBACKS == {}
    assert check_ledger(pg_db).clean


def test_a_repeated_open_is_replayed_and_another_request_under_its_key_conflicts(pg_db):
    wallet, acme, manager = setup(pg_db)
    first = manager.open_session("P1", "acme", "20.00", key="k1")
    again = manager.open_session("P1", "acme", "20", key="k1")
    assert again.id == first.id and again.status == "active"
    with pytest.raises(IdempotencyConflictError, match="idempotency key 'k1' was already used for a different"):
        manager.open_session("P1", "acme", "21.00", key="k1")
    assert server_steps.FALLBACKS == {"key used": 2}
    assert balances(wallet) == ("80.00", "20.00")


def test_too_many_open_sessions_and_short_funds_are_refused_as_before(pg_db):
    wallet, acme, manager = setup(pg_db)
    manager.open_session("P1", "acme", "60.00")
    with pytest.raises(InvalidStateError, match=r"already has 1 open session\(s\) at acme \(max 1\)"):
        manager.open_session("P1", "acme", "1.00")
    several = SessionManager(pg_db, {"acme": acme}, {"acme": SessionPolicy("EUR", max_open_sessions=3)},
                             clock=lambda: T0)
    with pytest.raises(InsufficientFundsError, match=r"insufficient funds in player:P1:main: 40.00 EUR available, "
                                                      r"50.00 EUR needed"):
        several.open_session("P1", "acme", "50.00")
    assert server_steps.FALLBACKS == {"max open": 1, "posting insufficient": 1}
    assert balances(wallet) == ("40.00", "60.00")


def test_a_player_with_limits_opens_through_the_python_step(pg_db):
    wallet, acme, manager = setup(pg_db)
    limits.set_limit(pg_db, "P1", "transfer_in_day", "30.00", now=T0 - dt.timedelta(days=2))
    with pytest.raises(LimitExceededError, match="reached"):
        manager.open_session("P1", "acme", "31.00")
    assert manager.open_session("P1", "acme", "30.00").status == "active"
    assert server_steps.FALLBACKS == {"limits": 2}
    assert balances(wallet) == ("70.00", "30.00")


def test_a_refused_transfer_in_gives_every_cent_back_in_one_call(pg_db):
    wallet, acme, manager = setup(pg_db)
    acme.fail_next(RejectedError("player blocked at provider"))
    session = manager.open_session("P1", "acme", "25.00")
    assert session.status == "failed" and session.failure_reason == "RejectedError: player blocked at provider"
    assert session.transfers[0].status == "refused" and session.transfers[0].attempts == 1
    assert balances(wallet) == ("100.00", "0.00")
    assert server_steps.FALLBACKS == {}
    assert check_ledger(pg_db).clean


def test_an_unknown_outcome_waits_for_its_backoff_and_a_refused_close_is_retried(pg_db):
    policy = SessionPolicy("EUR", retry_base_s=10, retry_max_s=60, stuck_after_attempts=2)
    wallet, acme, manager = setup(pg_db, policy)
    acme.fail_next(OutcomeUnknownError("read timeout"), apply=True)
    opening = manager.open_session("P1", "acme", "30.00")
    assert (opening.status, opening.in_doubt, opening.transfers[0].attempts) == ("opening", True, 1)
    with pg_db.engine.connect() as connection:
        transfer = connection.execute(select(Transfer.__table__).where(Transfer.__table__.c.id == opening.transfers[0].id)).one()
    assert transfer.next_attempt_at == policy.next_attempt(1, T0) == T0 + dt.timedelta(seconds=10)
    assert manager.resolve_in_doubt(T0 + dt.timedelta(seconds=10)).completed == 1
    acme.fail_next(RejectedError("wallet busy"), times=2)
    closing = manager.close_session(opening.id)
    assert (closing.status, closing.stuck, closing.failure_reason) == ("closing", False, "RejectedError: wallet busy")
    closing = manager.close_session(opening.id)
    assert closing.stuck and [t.id.rsplit("-", 1)[1] for t in closing.transfers] == ["in", "out1", "out2"]
    assert balances(wallet) == ("70.00", "30.00")
    closed = manager.close_session(opening.id)
    assert closed.status == "closed" and not closed.stuck and balances(wallet) == ("100.00", "0.00")
    assert server_steps.FALLBACKS == {}
    assert check_ledger(pg_db).clean


@pytest.mark.parametrize(("win", "available", "house_after"), [
    ("35.00", "125.00", -2500), ("0.00", "90.00", 1000), ("10.00", "100.00", None),
])
def test_a_settlement_books_the_game_result_to_the_house(pg_db, win, available, house_after):
    wallet, acme, manager = setup(pg_db)
    session = manager.open_session("P1", "acme", "20.00")
    acme.play("P1", bet=eur("10.00"), win=eur(win))
    closed = manager.close_session(session.id)
    assert closed.status == "closed" and closed.amount_out == eur("10.00") + eur(win)
    assert balances(wallet) == (available, "0.00")
    assert house(pg_db) == house_after  # no game result: the house account is never touched
    assert server_steps.FALLBACKS == {}
    assert check_ledger(pg_db).clean


def _settle_hash_pair(db, session_id: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(the settle entry's stored request hash, ``ledger.request_hash`` of its postings as Python would post them)."""
    sql = ("SELECT e.request_hash, a.code, a.currency, p.amount_minor FROM entries e JOIN postings p ON p.entry_id = e.id "
           "JOIN accounts a ON a.id = p.account_id WHERE e.idempotency_key = %(key)s")
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql(sql, {"key": f"session:{session_id}:settle"}).all()
    legs = [ledger.Leg(ledger.AccountRef(0, code, ccy, True), amount) for _, code, ccy, amount in rows]
    return rows[0][0], ledger.request_hash("session_settle", legs, None)


@pytest.mark.parametrize(("player", "win", "max_open"), [
    ("P1", "35.00", 1),  # house loses: locked, main, house
    ("a.b:main@x-1", "0.00", 1),  # house wins: a player id with the characters that sort around ':'
    ("Z_9:locked", "10.00", 1),  # even: no house leg
    ("h", "0.00", 2),  # lost everything, settled in the close call: no main leg
])
def test_the_settlement_hash_written_without_sorting_is_the_ledgers(pg_db, player, win, max_open):
    """tw_session_settle writes the settlement's canonical JSON in its sorted order (house, locked, main)
    instead of sorting it by a query: every shape of legs hashes as ``ledger.request_hash`` does."""
    wallet = Wallet(pg_db)
    wallet.create_player(player, "EUR")
    wallet.deposit(player, "100.00", reference="d1")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(pg_db, {"acme": acme}, {"acme": SessionPolicy("EUR", max_open_sessions=max_open)},
                             clock=lambda: T0)
    server_steps.FALLBACKS.clear()
    session = manager.open_session(player, "acme", "20.00")
    acme.play(player, bet=eur("20.00" if max_open == 2 else "10.00"), win=eur(win))
    if max_open == 2:  # the mirrored balance is what the close withdraws: 0.00, settled without the provider
        PlayMirror(pg_db).bet(session.id, "b1", "r1", eur("20.00"))
    assert manager.close_session(session.id).status == "closed"
    stored, python = _settle_hash_pair(pg_db, session.id)
    assert stored == python
    assert server_steps.FALLBACKS == {}
    assert check_ledger(pg_db).clean


def test_a_session_that_lost_everything_settles_in_the_close_call(pg_db):
    wallet, acme, _ = setup(pg_db)
    manager = SessionManager(pg_db, {"acme": acme}, {"acme": SessionPolicy("EUR", max_open_sessions=2)},
                             clock=lambda: T0)
    session = manager.open_session("P1", "acme", "20.00")
    acme.play("P1", bet=eur("20.00"), win=eur("0.00"))
    PlayMirror(pg_db).bet(session.id, "b1", "r1", eur("20.00"))
    closed = manager.close_session(session.id)
    assert closed.status == "closed" and closed.amount_out == eur("0.00")
    assert closed.transfers[-1].provider_tx_id == "none"  # settled here: the provider was never asked
    assert balances(wallet) == ("80.00", "0.00") and house(pg_db) == 2000
    assert server_steps.FALLBACKS == {}
    assert check_ledger(pg_db).clean


def test_findings_and_other_currencies_take_the_python_step(pg_db):
    policy = SessionPolicy("EUR", review_out_multiple=Decimal(2))
    wallet, acme, manager = setup(pg_db, policy)
    session = manager.open_session("P1", "acme", "10.00")
    acme.play("P1", bet=eur("1.00"), win=eur("30.00"))
    closed = manager.close_session(session.id)
    assert closed.status == "closed" and balances(wallet) == ("129.00", "0.00")
    assert server_steps.FALLBACKS == {"review multiple": 1}


def test_each_settlement_check_of_the_applied_step_hands_over_to_python(pg_db):
    """The checks tw_transfer_applied makes before it settles (inline since 0010): a review amount and a
    mirrored balance the provider does not return go to the Python step, which books and flags them."""
    wallet, acme, manager = setup(pg_db, SessionPolicy("EUR", review_out_amounts={"EUR": 1500}))
    manager.close_session(manager.open_session("P1", "acme", "20.00").id)
    assert server_steps.FALLBACKS == {"review amount": 1}
    server_steps.FALLBACKS.clear()
    session = manager.open_session("P1", "acme", "10.00")
    PlayMirror(pg_db).bet(session.id, "b1", "r1", eur("5.00"))
    acme.play("P1", bet=eur("4.00"), win=eur("0.00"))
    closed = manager.close_session(session.id)
    assert closed.status == "closed" and closed.amount_out == eur("6.00")
    assert server_steps.FALLBACKS == {"conservation": 1}
    assert balances(wallet) == ("96.00", "0.00")
    assert check_ledger(pg_db).clean


def test_an_answer_that_does_not_fit_or_an_unknown_transfer_goes_to_python(pg_db):
    wallet, acme, manager = setup(pg_db)
    policy = manager.policies["acme"]
    acme.fail_next(OutcomeUnknownError("response lost"), apply=True)
    opening = manager.open_session("P1", "acme", "10.00")
    transfer_in = opening.transfers[0].id
    booked = manager._record("applied", policy, transfer_in, T0, answer=(eur("99.00"), "tx", None))
    assert booked == (False, None)  # never booked: in doubt, flagged by the Python step
    assert server_steps.FALLBACKS == {"answer does not fit": 1}
    assert manager.get(opening.id).transfers[0].status == "in_doubt"
    with pytest.raises(NotFoundError, match="unknown transfer 'nosuch-in'"):
        manager._record("applied", policy, "nosuch-in", T0, answer=(eur("1.00"), "tx", None))
    assert server_steps.FALLBACKS == {"answer does not fit": 1, "unknown transfer": 1}
    assert balances(wallet) == ("90.00", "10.00")
    assert check_ledger(pg_db).clean


def test_two_connections_finishing_one_transfer_book_it_once(pg_db):
    wallet, acme, manager = setup(pg_db)
    policy = manager.policies["acme"]
    for round_number in range(3):
        acme.fail_next(OutcomeUnknownError("response lost"), apply=True)
        opening = manager.open_session("P1", "acme", "10.00")
        transfer_in = opening.transfers[0].id
        answer = (eur("10.00"), f"in-{round_number}", None)
        results = _race([lambda: manager._record("applied", policy, transfer_in, T0, answer=answer)] * 2)
        assert results == [(True, None), (True, None)]
        acme.fail_next(OutcomeUnknownError("response lost"), apply=True, operations={"transfer_out"})
        closing = manager.close_session(opening.id)
        transfer_out = closing.transfers[-1].id
        answer = (eur("10.00"), f"out-{round_number}", None)
        results = _race([lambda: manager._record("applied", policy, transfer_out, T0, answer=answer)] * 2)
        assert results == [(True, None), (True, None)]
        assert manager.get(opening.id).status == "closed"
    with pg_db.engine.connect() as connection:
        settles = connection.execute(select(Entry.__table__.c.kind).where(Entry.__table__.c.kind == "session_settle")).all()
    assert len(settles) == 3
    assert balances(wallet) == ("100.00", "0.00")
    assert server_steps.FALLBACKS == {}
    assert check_ledger(pg_db).clean


def test_the_server_view_is_the_python_view(pg_db):
    wallet, acme, manager = setup(pg_db)
    acme.fail_next(OutcomeUnknownError("read timeout"))
    opening = manager.open_session("P1", "acme", "12.34")
    with pg_db.engine.connect() as connection:
        document = connection.exec_driver_sql("SELECT tw_session_view(%(id)s)", {"id": opening.id}).scalar_one()
    assert to_view(document["session"], document["transfers"]) == manager.get(opening.id) == opening


def test_the_view_an_activation_builds_from_its_row_is_the_view_read_after(pg_db):
    """tw_transfer_applied builds an activated session's view from the updated row (not read again)."""
    wallet, acme, manager = setup(pg_db)
    opened = manager.open_session("P1", "acme", "12.34")
    assert opened.status == "active" and opened == manager.get(opened.id)
    assert server_steps.FALLBACKS == {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    players=st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,20}", fullmatch=True), min_size=2, max_size=3,
                     unique=True),
    amounts=st.lists(st.integers(-10**15, 10**15).filter(bool), min_size=2, max_size=3),
)
def test_the_sql_entry_hash_is_the_ledgers_request_hash(pg_db, players, amounts):
    legs = [ledger.Leg(ledger.AccountRef(n, f"player:{p}:main", "EUR", True), a)
            for n, (p, a) in enumerate(zip(players, amounts))]
    with pg_db.engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT tw_entry_hash('session_settle', %(codes)s::varchar[], %(ccys)s::varchar[], %(deltas)s::bigint[])",
            {"codes": [leg.account.code for leg in legs], "ccys": ["EUR"] * len(legs),
             "deltas": [leg.amount_minor for leg in legs]}).scalar_one()
    assert stored == ledger.request_hash("session_settle", legs, None)


def test_the_sql_backoff_is_the_policys(pg_db):
    policies = [SessionPolicy("EUR"), SessionPolicy("EUR", retry_base_s=1, retry_max_s=60),
                SessionPolicy("EUR", retry_base_s=7, retry_max_s=7), SessionPolicy("EUR", retry_base_s=0, retry_max_s=5)]
    with pg_db.engine.connect() as connection:
        for policy in policies:
            for attempts in range(0, 80, 3):
                stored = connection.exec_driver_sql(
                    "SELECT tw_session_backoff(%(n)s, %(base)s, %(max)s, %(now)s)",
                    {"n": attempts, "base": policy.retry_base_s, "max": policy.retry_max_s, "now": T0}).scalar_one()
                assert stored == policy.next_attempt(attempts, T0), (policy, attempts)


def _story(db, server_steps_on: bool, player: str) -> list[object]:  # type: ignore[no-untyped-def]
    """One worked story through every outcome; what an operator sees of it, without ids and times."""
    wallet = Wallet(db)
    wallet.create_player(player, "EUR")
    wallet.deposit(player, "100.00", reference=f"d-{player}")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR", retry_base_s=10)}, clock=lambda: T0)
    manager.server_steps = server_steps_on
    seen: list[object] = []

    def note(view) -> None:  # type: ignore[no-untyped-def]
        balance = wallet.balance(player)
        seen.append((view.status, view.in_doubt, view.stuck, view.amount_in, view.amount_out, view.failure_reason,
                     [(t.direction, t.status, t.attempts, t.amount, t.game_amount, t.last_error) for t in view.transfers],
                     balance.available, balance.locked))

    acme.fail_next(RejectedError("player blocked"))
    note(manager.open_session(player, "acme", "10.00"))
    acme.fail_next(OutcomeUnknownError("response lost"), apply=True)
    opening = manager.open_session(player, "acme", "30.00", key=f"k-{player}")
    note(opening)
    manager.resolve_in_doubt(T0 + dt.timedelta(seconds=10))
    note(manager.open_session(player, "acme", "30.00", key=f"k-{player}"))
    acme.play(player, bet=eur("12.00"), win=eur("2.50"))
    acme.fail_next(RejectedError("busy"))
    note(manager.close_session(opening.id))
    note(manager.close_session(opening.id))
    return seen


def test_the_server_steps_and_the_python_steps_tell_the_same_story(pg_db):
    assert _story(pg_db, True, "S1") == _story(pg_db, False, "S2")
    assert check_ledger(pg_db).clean


def test_a_database_below_0008_runs_the_python_steps_with_a_warning(new_database_url, caplog):
    """New code on a downgraded database: each missing function fails before it writes, so the step
    falls back to Python (logged) instead of raising UndefinedFunction."""
    db = open_database(new_database_url("postgres"))
    try:
        migrations.upgrade(db)
        migrations.downgrade(db, "0007")
        wallet, acme, manager = setup(db)
        assert manager.server_steps
        with caplog.at_level("WARNING", logger="transfer_wallet.sessions.server_steps"):
            opened = manager.open_session("P1", "acme", "30.00", key="k1")
            acme.play("P1", bet=eur("10.00"), win=eur("4.00"))
            closed = manager.close_session(opened.id)
        assert (opened.status, closed.status, balances(wallet)) == ("active", "closed", ("94.00", "0.00"))
        assert server_steps.FALLBACKS == {"no server function": 4}  # open, activated, close intent, settled
        assert sum("TW_SESSION_SERVER_STEPS=0" in r.getMessage() for r in caplog.records) == 4
        assert check_ledger(db).clean
    finally:
        db.dispose()


def test_downgrading_0010_restores_the_0008_bodies_exactly(new_database_url):
    db = open_database(new_database_url("postgres"))
    sql = ("SELECT proname, pg_get_functiondef(oid) FROM pg_proc WHERE proname IN "
           "('tw_session_open', 'tw_session_settle', 'tw_transfer_applied') ORDER BY proname")

    def bodies() -> list[tuple[str, str]]:
        with db.engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(sql).all()]

    try:
        migrations.upgrade(db, "0008")
        at_0008 = bodies()
        migrations.upgrade(db, "0010")
        assert [name for name, _ in bodies()] == [name for name, _ in at_0008]
        assert all(new != old for (_, new), (_, old) in zip(bodies(), at_0008))
        migrations.downgrade(db, "0008")
        assert bodies() == at_0008
    finally:
        db.dispose()


def test_a_settlement_that_finds_its_session_moved_on_is_a_concurrency_error(pg_db):
    """tw_session_settle's guard raises TWC01, ConcurrencyError as ``state.move`` raises it. Unreachable
    through the steps (every caller holds the session lock and checked CLOSING under it), so the function
    is called here by hand on a session still OPENING; the whole call rolls back."""
    wallet, acme, manager = setup(pg_db)
    acme.fail_next(OutcomeUnknownError("lost"))
    opening = manager.open_session("P1", "acme", "30.00")
    sql = ("SELECT tw_session_settle(gs, %(transfer)s, 3000, 'tx', %(now)s, %(now)s) FROM game_sessions gs "
           "WHERE gs.id = %(session)s")
    with pytest.raises(ConcurrencyError, match=f"session {opening.id} changed state concurrently; try again"):
        server_steps._call(pg_db, sql, {"transfer": f"{opening.id}-in", "now": T0, "session": opening.id})
    after = manager.get(opening.id)
    assert (after.status, after.transfers[0].status, balances(wallet)) == ("opening", "in_doubt", ("70.00", "30.00"))
    assert check_ledger(pg_db).clean
