"""Finding discrepancies: list filters (with a fixed ``now``), counts for summaries, and concurrent moves.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from transfer_wallet import discrepancies
from transfer_wallet.discrepancies import Finding, clear_absent, record
from transfer_wallet.discrepancies.workflow import apply_change
from transfer_wallet.errors import ConcurrencyError, InvalidStateError, ValidationError

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def finding(tx: str, kind: str = "AMOUNT_MISMATCH", provider: str | None = "acme",
            day: dt.date | None = dt.date(2026, 11, 23), source: str = "reconcile") -> Finding:
    return Finding(kind=kind, source=source, fingerprint=f"{source}:{provider}:{day}:{kind}:{tx}",
                   provider=provider, business_date=day, transfer_id=tx, currency="EUR",
                   expected_minor=500, actual_minor=700, difference_minor=200, detail=f"{kind} on {tx}")


def put(db, item: Finding, first_seen: dt.datetime) -> int:
    return db.transaction(lambda connection: record(connection, item, now=first_seen))


@pytest.fixture
def ledger_of_breaks(db):
    """Six discrepancies of different kinds, providers, days and ages (as of NOW), oldest first."""
    ids = {
        "old_amount": put(db, finding("t-1"), NOW - dt.timedelta(days=10)),
        "exactly_7_days": put(db, finding("t-2", "MISSING_IN_LEDGER"), NOW - dt.timedelta(days=7)),
        "almost_7_days": put(db, finding("t-3", "MISSING_IN_LEDGER"), NOW - dt.timedelta(days=7) + dt.timedelta(seconds=1)),
        "betsul": put(db, finding("t-4", provider="betsul", day=dt.date(2026, 11, 30)), NOW - dt.timedelta(days=1)),
        "session": put(db, finding("s-1", "SESSION_CONSERVATION", day=None, source="session"), NOW - dt.timedelta(hours=2)),
        "fresh": put(db, finding("t-5"), NOW - dt.timedelta(minutes=5)),
    }
    discrepancies.transition(db, ids["old_amount"], to_status="investigating", note="asked acme", actor="anna", now=NOW)
    discrepancies.transition(db, ids["betsul"], to_status="resolved", note="paid", actor="anna", now=NOW)
    return db, ids


def listed(db, **filters) -> list[int]:
    return [d.id for d in discrepancies.list_discrepancies(db, now=NOW, **filters)]


def test_newest_first_and_bounded_by_limit(ledger_of_breaks):
    db, ids = ledger_of_breaks
    newest_first = [ids[name] for name in ("fresh", "session", "betsul", "almost_7_days", "exactly_7_days", "old_amount")]
    assert listed(db) == newest_first
    assert listed(db, limit=2) == newest_first[:2]


def test_filters_by_status_kind_provider_and_business_date(ledger_of_breaks):
    db, ids = ledger_of_breaks
    assert listed(db, status="investigating") == [ids["old_amount"]]
    assert listed(db, status=["resolved", "investigating"]) == [ids["betsul"], ids["old_amount"]]
    assert ids["betsul"] not in listed(db, status="unresolved") and len(listed(db, status="unresolved")) == 5
    assert listed(db, kind="MISSING_IN_LEDGER") == [ids["almost_7_days"], ids["exactly_7_days"]]
    assert listed(db, provider="betsul") == [ids["betsul"]]
    assert listed(db, business_date=dt.date(2026, 11, 30)) == [ids["betsul"]]
    assert listed(db, provider="acme", kind="AMOUNT_MISMATCH", status="open") == [ids["fresh"]]


def test_older_than_keeps_those_at_least_that_many_days_old(ledger_of_breaks):
    db, ids = ledger_of_breaks
    assert listed(db, older_than_days=7) == [ids["exactly_7_days"], ids["old_amount"]]
    assert [d.age_days for d in discrepancies.list_discrepancies(db, older_than_days=7, now=NOW)] == [7, 10]
    assert listed(db, older_than_days=0) == listed(db)
    assert listed(db, older_than_days=11) == []


@pytest.mark.parametrize("filters, message", [
    ({"limit": 0}, "limit must be 1 to 100000"),
    ({"limit": 100_001}, "limit must be 1 to 100000"),
    ({"status": "closed"}, "unknown discrepancy status 'closed'"),
    ({"older_than_days": -1}, "older than must be 0 to"),
    ({"kind": "X" * 33}, "type must be 1 to 32 characters"),
    ({"provider": ""}, "provider must be 1 to 32 characters"),
])
def test_a_bad_filter_is_a_clear_error(db, filters, message):
    with pytest.raises(ValidationError, match=message):
        discrepancies.list_discrepancies(db, **filters)


def test_counts_by_kind_provider_and_status(ledger_of_breaks):
    db, _ = ledger_of_breaks
    summary = [(c.kind, c.provider, c.status, c.count) for c in discrepancies.counts(db, now=NOW)]
    assert summary == [
        ("AMOUNT_MISMATCH", "acme", "investigating", 1),
        ("AMOUNT_MISMATCH", "acme", "open", 1),
        ("AMOUNT_MISMATCH", "betsul", "resolved", 1),
        ("MISSING_IN_LEDGER", "acme", "open", 2),
        ("SESSION_CONSERVATION", "acme", "open", 1),
    ]
    [missing] = discrepancies.counts(db, kind="MISSING_IN_LEDGER", now=NOW)
    assert missing.as_dict() == {"kind": "MISSING_IN_LEDGER", "provider": "acme", "status": "open", "count": 2,
                                 "oldest_first_seen_at": "2026-11-24T08:00:00+00:00"}
    assert discrepancies.counts(db, status="unresolved", older_than_days=9, now=NOW)[0].count == 1


# -- concurrent moves ----------------------------------------------------------------------------


def test_a_move_on_a_stale_status_writes_nothing_and_says_try_again(db):
    found = put(db, finding("t-1"), NOW)
    # finance A read "open"; meanwhile finance B resolves it; then A's write arrives
    discrepancies.transition(db, found, to_status="resolved", note="paid", actor="bo", now=NOW)
    with pytest.raises(ConcurrencyError, match=f"discrepancy {found} changed concurrently; try again"):
        db.transaction(lambda connection: apply_change(
            connection, found, read_status="open", to_status="written_off", action="transition",
            note="too small to chase", actor="anna", now=NOW))
    view = discrepancies.get(db, found)
    assert (view.status, view.note, [e.actor for e in view.history]) == ("resolved", "paid", ["system", "bo"])


def test_two_people_resolving_at_once_exactly_one_wins(db):
    found = put(db, finding("t-1"), NOW)
    people = ["anna", "bo", "carl", "dora"]
    start = threading.Barrier(len(people))
    outcomes: dict[str, str] = {}

    def resolve(person: str) -> None:
        start.wait()
        try:
            discrepancies.transition(db, found, to_status="resolved", note=f"paid, says {person}", actor=person)
            outcomes[person] = "won"
        except (InvalidStateError, ConcurrencyError) as exc:
            outcomes[person] = type(exc).__name__

    threads = [threading.Thread(target=resolve, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    [winner] = [person for person, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == len(people)
    view = discrepancies.get(db, found)
    assert (view.changed_by, view.note) == (winner, f"paid, says {winner}")
    assert [(e.actor, e.to_status) for e in view.history] == [("system", "open"), (winner, "resolved")]


def test_a_clearing_run_racing_a_person_leaves_history_that_matches_the_status(db):
    for round_number in range(5):
        found = put(db, finding(f"t-{round_number}"), NOW)
        start = threading.Barrier(2)
        outcomes: dict[str, object] = {}

        def clear_run() -> None:
            start.wait()
            outcomes["cleared"] = db.transaction(lambda connection: clear_absent(
                connection, source="reconcile", provider="acme", business_date=dt.date(2026, 11, 23), seen=set(),
                now=NOW))

        def person() -> None:
            start.wait()
            try:
                discrepancies.transition(db, found, to_status="resolved", note="paid", actor="anna", now=NOW)
                outcomes["person"] = "resolved"
            except (InvalidStateError, ConcurrencyError) as exc:
                outcomes["person"] = type(exc).__name__

        threads = [threading.Thread(target=clear_run), threading.Thread(target=person)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        view = discrepancies.get(db, found)
        assert [e.to_status for e in view.history] == ["open", view.status], outcomes
        assert (outcomes["cleared"], outcomes["person"]) in {(1, "InvalidStateError"), (1, "ConcurrencyError"),
                                                             (0, "resolved")}, outcomes
        assert view.status == ("resolved" if outcomes["person"] == "resolved" else "cleared")


def test_count_for_sessions_counts_only_the_named_sessions_in_chunks(db):
    from transfer_wallet.models import GameSession, table_of
    from transfer_wallet.wallet import Wallet

    Wallet(db).create_player("P1", "EUR")
    sessions = table_of(GameSession)
    base = dict(player_id="P1", provider="acme", status="closed", wallet_currency="EUR", game_currency="EUR",
                amount_in_minor=100, game_amount_in_minor=100, game_balance_minor=0, mirrored=False,
                open_request_hash="h", idle_timeout_s=900, max_session_s=3600, opened_at=NOW,
                last_activity_at=NOW, deadline_at=NOW, close_attempts=0, stuck=False)
    ids = [f"s{n:04d}" for n in range(1203)]
    db.transaction(lambda c: c.execute(sessions.insert(), [dict(base, id=i, open_key=f"k-{i}") for i in ids]))
    for n in (0, 600, 1202):
        put(db, Finding(kind="SESSION_CONSERVATION", detail="x", session_id=ids[n], transfer_id=f"{ids[n]}-out1"),
            NOW)
    assert discrepancies.count_for_sessions(db, ids) == 3
    assert discrepancies.count_for_sessions(db, ids[1:1202]) == 1
    assert discrepancies.count_for_sessions(db, []) == 0
