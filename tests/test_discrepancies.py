"""The discrepancy service as finance lives it: a break is recorded, seen again, worked on, cleared, reopened.

Every test runs on SQLite and PostgreSQL (the ``db`` fixture) with explicit times.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from transfer_wallet import discrepancies
from transfer_wallet.discrepancies import Finding, clear_absent, record
from transfer_wallet.errors import InvalidStateError, NotFoundError, ValidationError
from transfer_wallet.money import Money, currency

UTC = dt.timezone.utc
MONDAY_7AM = dt.datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
SUNDAY = dt.date(2026, 11, 23)


def amount_mismatch(tx: str = "t-1", *, provider: str = "acme", day: dt.date = SUNDAY, **changes) -> Finding:
    values = dict(
        kind="AMOUNT_MISMATCH", source="reconcile", fingerprint=f"reconcile:{provider}:{day}:AMOUNT_MISMATCH:{tx}",
        provider=provider, business_date=day, transfer_id=tx, provider_tx_id=f"{provider}-{tx}", player_id="P1",
        currency="EUR", expected_minor=1000, actual_minor=1100, difference_minor=100,
        fields={"amount": {"ledger": "10.00", "provider": "11.00"}},
        detail="provider reports 11.00 EUR, ledger holds 10.00 EUR",
    )
    values.update(changes)
    return Finding(**values)


def put(db, finding: Finding, at: dt.datetime) -> int:
    return db.transaction(lambda connection: record(connection, finding, now=at))


def clear(db, at: dt.datetime, seen=(), *, provider="acme", day=SUNDAY) -> int:
    return db.transaction(lambda connection: clear_absent(
        connection, source="reconcile", provider=provider, business_date=day, seen=set(seen), now=at))


def history(db, discrepancy_id: int) -> list[tuple[str, str, str | None, str | None]]:
    view = discrepancies.get(db, discrepancy_id, now=MONDAY_7AM)
    return [(e.actor, e.action, e.from_status, e.to_status) for e in view.history]


# -- a worked story ----------------------------------------------------------------------------


def test_a_break_seen_again_keeps_finance_work_then_clears_and_reopens(db):
    first = put(db, amount_mismatch(), MONDAY_7AM)
    discrepancies.transition(db, first, to_status="investigating", note="asked acme for the round log",
                             actor="anna.berg", now=MONDAY_7AM + dt.timedelta(hours=2))

    tuesday = MONDAY_7AM + dt.timedelta(days=1)
    again = put(db, amount_mismatch(actual_minor=1150, difference_minor=150), tuesday)
    assert again == first
    seen = discrepancies.get(db, first, now=tuesday)
    assert (seen.times_seen, seen.status, seen.note, seen.changed_by) == (
        2, "investigating", "asked acme for the round log", "anna.berg")
    assert (seen.first_seen_at, seen.last_seen_at) == (MONDAY_7AM, tuesday)
    assert (seen.actual, seen.difference) == (Money(1150, currency("EUR")), Money(150, currency("EUR")))

    wednesday = tuesday + dt.timedelta(days=1)
    assert clear(db, wednesday) == 1
    cleared = discrepancies.get(db, first, now=wednesday)
    assert (cleared.status, cleared.closed_at, cleared.note) == ("cleared", wednesday, "asked acme for the round log")

    thursday = wednesday + dt.timedelta(days=1)
    assert put(db, amount_mismatch(), thursday) == first
    reopened = discrepancies.get(db, first, now=thursday)
    assert (reopened.status, reopened.closed_at, reopened.times_seen, reopened.age_days) == ("open", None, 3, 3)
    assert history(db, first) == [
        ("system", "recorded", None, "open"),
        ("anna.berg", "transition", "open", "investigating"),
        ("system", "changed", "investigating", "investigating"),
        ("system", "cleared", "investigating", "cleared"),
        ("system", "reopened", "cleared", "open"),
    ]


def test_a_resolved_break_stays_resolved_when_seen_again(db):
    found = put(db, amount_mismatch(), MONDAY_7AM)
    discrepancies.transition(db, found, to_status="resolved", note="acme credited 1.00 on 25 Nov", actor="anna")
    put(db, amount_mismatch(), MONDAY_7AM + dt.timedelta(days=1))
    view = discrepancies.get(db, found)
    assert (view.status, view.times_seen, view.note) == ("resolved", 2, "acme credited 1.00 on 25 Nov")
    assert [e.action for e in view.history] == ["recorded", "transition"]


def test_a_resolved_break_seen_again_with_another_amount_is_finance_business_again(db):
    found = put(db, amount_mismatch(actual_minor=1001, difference_minor=1), MONDAY_7AM)
    discrepancies.transition(db, found, to_status="resolved", note="rounding at provider, 0.01 accepted", actor="anna")
    tuesday = MONDAY_7AM + dt.timedelta(days=1)
    assert put(db, amount_mismatch(actual_minor=401000, difference_minor=400000), tuesday) == found
    view = discrepancies.get(db, found, now=tuesday)
    assert (view.status, view.closed_at, view.note) == ("open", None, "rounding at provider, 0.01 accepted")
    assert view.difference == Money(400000, currency("EUR"))
    reopened = view.history[-1]
    assert (reopened.actor, reopened.action, reopened.from_status, reopened.to_status) == (
        "system", "reopened", "resolved", "open")
    assert "difference_minor 1 -> 400000" in (reopened.note or "")


def test_a_written_off_break_seen_again_unchanged_stays_written_off(db):
    found = put(db, amount_mismatch(), MONDAY_7AM)
    discrepancies.transition(db, found, to_status="written_off", note="below threshold", actor="anna")
    put(db, amount_mismatch(), MONDAY_7AM + dt.timedelta(days=1))
    assert discrepancies.get(db, found).status == "written_off"


def test_clear_absent_keeps_what_is_still_seen_and_leaves_closed_ones_alone(db):
    kept = put(db, amount_mismatch("t-1"), MONDAY_7AM)
    gone = put(db, amount_mismatch("t-2"), MONDAY_7AM)
    resolved = put(db, amount_mismatch("t-3"), MONDAY_7AM)
    discrepancies.transition(db, resolved, to_status="resolved", note="fixed", actor="anna", now=MONDAY_7AM)
    other_day = put(db, amount_mismatch("t-4", day=SUNDAY - dt.timedelta(days=1)), MONDAY_7AM)

    fingerprint = discrepancies.get(db, kept).fingerprint
    assert clear(db, MONDAY_7AM + dt.timedelta(hours=1), seen={fingerprint}) == 1
    statuses = {d.id: d.status for d in discrepancies.list_discrepancies(db)}
    assert statuses == {kept: "open", gone: "cleared", resolved: "resolved", other_day: "open"}


def test_clear_absent_closes_exactly_the_absent_open_ones_in_batches_with_their_history(db, monkeypatch):
    monkeypatch.setattr(discrepancies.recording, "CLEAR_BATCH", 2)  # several UPDATEs per status
    ids = {tx: put(db, amount_mismatch(tx), MONDAY_7AM) for tx in ("t-1", "t-2", "t-3", "t-4", "t-5", "t-6")}
    discrepancies.transition(db, ids["t-2"], to_status="investigating", note="asked", actor="anna", now=MONDAY_7AM)
    discrepancies.transition(db, ids["t-6"], to_status="resolved", note="fixed", actor="anna", now=MONDAY_7AM)
    other_day = put(db, amount_mismatch("t-3", day=SUNDAY - dt.timedelta(days=1)), MONDAY_7AM)
    later = MONDAY_7AM + dt.timedelta(hours=1)

    assert clear(db, later, seen={amount_mismatch("t-1").identity()}) == 4
    statuses = {d.id: d.status for d in discrepancies.list_discrepancies(db)}
    assert statuses == {ids["t-1"]: "open", ids["t-2"]: "cleared", ids["t-3"]: "cleared", ids["t-4"]: "cleared",
                        ids["t-5"]: "cleared", ids["t-6"]: "resolved", other_day: "open"}
    assert history(db, ids["t-2"])[-1] == ("system", "cleared", "investigating", "cleared")
    assert history(db, ids["t-4"]) == [("system", "recorded", None, "open"), ("system", "cleared", "open", "cleared")]
    assert [e[1] for e in history(db, ids["t-1"])] == ["recorded"] and history(db, ids["t-6"])[-1][1] != "cleared"
    view = discrepancies.get(db, ids["t-5"], now=later)
    assert view.closed_at == later and view.history[-1].note == "no longer seen"
    assert clear(db, later + dt.timedelta(hours=1)) == 1  # again: only t-1 is left to clear, once
    assert len(history(db, ids["t-4"])) == 2 and history(db, ids["t-1"])[-1][1] == "cleared"


# -- the workflow table ------------------------------------------------------------------------

ALLOWED = {  # written out here on purpose: a change to TRANSITIONS must change this table too
    ("open", "investigating"), ("open", "resolved"), ("open", "written_off"),
    ("investigating", "open"), ("investigating", "resolved"), ("investigating", "written_off"),
}
STATUSES = ("open", "investigating", "resolved", "written_off", "cleared")


def in_status(db, status: str, tx: str) -> int:
    found = put(db, amount_mismatch(tx), MONDAY_7AM)
    if status == "cleared":
        clear(db, MONDAY_7AM)
    elif status != "open":
        discrepancies.transition(db, found, to_status=status, note="setting up", actor="setup", now=MONDAY_7AM)
    return found


def test_every_move_of_the_workflow_table(db):
    assert {(a, b) for a, targets in discrepancies.TRANSITIONS.items() for b in targets} == ALLOWED
    for number, (from_status, to_status) in enumerate((a, b) for a in STATUSES for b in STATUSES):
        found = in_status(db, from_status, f"t-{number}")
        before = history(db, found)
        later = MONDAY_7AM + dt.timedelta(hours=1)
        if (from_status, to_status) in ALLOWED:
            moved = discrepancies.transition(db, found, to_status=to_status, note="checked", actor="bo", now=later)
            assert moved.status == to_status
            assert moved.history[-1] == discrepancies.DiscrepancyEventView(
                id=moved.history[-1].id, at=later, actor="bo", action="transition", from_status=from_status,
                to_status=to_status, note="checked")
            assert moved.closed_at == (later if to_status in ("resolved", "written_off") else None)
            continue
        expected_error = ValidationError if to_status == "cleared" else InvalidStateError
        with pytest.raises(expected_error):
            discrepancies.transition(db, found, to_status=to_status, note="checked", actor="bo", now=later)
        after = discrepancies.get(db, found)
        assert (after.status, history(db, found)) == (from_status, before), (from_status, to_status)


def test_resolving_twice_is_a_clear_error_and_changes_nothing(db):
    found = put(db, amount_mismatch(), MONDAY_7AM)
    discrepancies.transition(db, found, to_status="resolved", note="acme credited it", actor="anna")
    with pytest.raises(InvalidStateError, match=f"discrepancy {found} is already resolved"):
        discrepancies.transition(db, found, to_status="resolved", note="again", actor="bo")
    with pytest.raises(InvalidStateError, match="already closed as resolved; it cannot move to written_off"):
        discrepancies.transition(db, found, to_status="written_off", note="again", actor="bo")
    view = discrepancies.get(db, found)
    assert (view.note, view.changed_by, len(view.history)) == ("acme credited it", "anna", 2)


def test_an_unknown_id_is_not_found(db):
    with pytest.raises(NotFoundError, match="no discrepancy 999"):
        discrepancies.get(db, 999)
    with pytest.raises(NotFoundError, match="no discrepancy 999"):
        discrepancies.transition(db, 999, to_status="resolved", note="x", actor="anna")
    with pytest.raises(NotFoundError, match="no discrepancy 999"):
        discrepancies.add_note(db, 999, "x", "anna")


@pytest.mark.parametrize("actor", ["", " anna", "anna ", "a" * 65, "anna;drop", "anna\n", "system", "System", None])
def test_a_move_needs_a_real_name(db, actor):
    found = put(db, amount_mismatch(), MONDAY_7AM)
    with pytest.raises(ValidationError):
        discrepancies.transition(db, found, to_status="resolved", note="paid", actor=actor)
    assert discrepancies.get(db, found).status == "open"


@pytest.mark.parametrize("note", ["", "   ", "a" * 2001, "paid\x00", "paid\x1b[2J", None])
def test_a_move_needs_a_readable_note(db, note):
    found = put(db, amount_mismatch(), MONDAY_7AM)
    with pytest.raises(ValidationError):
        discrepancies.transition(db, found, to_status="resolved", note=note, actor="anna")
    assert len(discrepancies.get(db, found).history) == 1


def test_names_and_notes_at_their_limits_are_kept(db):
    found = put(db, amount_mismatch(), MONDAY_7AM)
    note = "line one\n\tline two " + "x" * (2000 - 19)
    name = "Anna O'Brien-Berg @finance.example" + "z" * (64 - 34)
    view = discrepancies.transition(db, found, to_status="written_off", note=f"  {note}  ", actor=name)
    assert (view.note, view.changed_by, view.history[-1].note) == (note, name, note)


def test_a_note_changes_nothing_but_the_note_even_on_a_closed_discrepancy(db):
    found = put(db, amount_mismatch(), MONDAY_7AM)
    discrepancies.transition(db, found, to_status="written_off", note="under the threshold", actor="anna",
                             now=MONDAY_7AM)
    view = discrepancies.add_note(db, found, "approved by CFO", "carl", now=MONDAY_7AM + dt.timedelta(hours=1))
    assert (view.status, view.note, view.changed_by, view.closed_at) == (
        "written_off", "approved by CFO", "carl", MONDAY_7AM)
    assert [(e.action, e.from_status, e.to_status, e.note) for e in view.history][-1] == (
        "note", "written_off", "written_off", "approved by CFO")


# -- history is append-only, by the database -----------------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE discrepancy_events SET note = 'rewritten', actor = 'mallory'",
    "DELETE FROM discrepancy_events",
])
def test_the_database_refuses_to_rewrite_history(db, statement):
    found = put(db, amount_mismatch(), MONDAY_7AM)
    discrepancies.transition(db, found, to_status="resolved", note="paid", actor="anna")
    with pytest.raises(DBAPIError, match="append-only"):
        with db.engine.begin() as connection:
            connection.execute(text(statement))
    assert [(e.actor, e.note) for e in discrepancies.get(db, found).history] == [("system", None), ("anna", "paid")]


# -- views -------------------------------------------------------------------------------------


def test_as_dict_gives_exact_major_units_utc_times_and_age(db):
    found = put(db, amount_mismatch(currency="KWD", expected_minor=10_005, actual_minor=10_000,
                                    difference_minor=-5), MONDAY_7AM)
    view = discrepancies.get(db, found, now=MONDAY_7AM + dt.timedelta(days=2, hours=23))
    document = view.as_dict()
    assert (document["expected"], document["actual"], document["difference"]) == ("10.005", "10.000", "-0.005")
    assert (document["first_seen_at"], document["age_days"]) == ("2026-11-24T07:00:00+00:00", 2)
    assert document["business_date"] == "2026-11-23"
    assert document["fields"] == {"amount": {"ledger": "10.00", "provider": "11.00"}}
    assert [e["action"] for e in document["history"]] == ["recorded"]
    assert "history" not in discrepancies.list_discrepancies(db)[0].as_dict()


def test_without_a_known_currency_amounts_stay_raw_minor_units(db):
    found = put(db, amount_mismatch(currency="ZZZ", kind="INVALID_RECORD"), MONDAY_7AM)
    document = discrepancies.get(db, found).as_dict()
    assert (document["expected"], document["expected_minor"], document["currency"]) == (None, 1000, "ZZZ")


def test_fields_too_long_for_the_column_are_kept_as_valid_json(db):
    huge = {"detail": {"provider": '"quoted"' * 2000, "ledger": "x"}}
    found = put(db, amount_mismatch(fields=huge), MONDAY_7AM)
    fields = discrepancies.get(db, found).fields
    assert list(fields) == ["_truncated"] and fields["_truncated"].startswith('{"detail": {"ledger": "x"')


def test_clear_absent_with_only_clears_just_the_named_breaks_of_the_window(db):
    explained = put(db, amount_mismatch("t-1"), MONDAY_7AM)
    other = put(db, amount_mismatch("t-2"), MONDAY_7AM)
    fingerprint = amount_mismatch("t-1").identity()
    cleared = db.transaction(lambda connection: clear_absent(
        connection, source="reconcile", provider="acme", business_date=SUNDAY, seen=(), only={fingerprint},
        now=MONDAY_7AM))
    assert cleared == 1
    assert (discrepancies.get(db, explained).status, discrepancies.get(db, other).status) == ("cleared", "open")
