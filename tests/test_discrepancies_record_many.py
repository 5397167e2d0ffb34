"""``record_many`` leaves the database exactly as ``record`` called for each finding in turn would.

Every test runs on SQLite and PostgreSQL (the ``db`` fixture). The same story is told
twice in one database, once per way of recording, each under its own provider and
transfer ids (``one`` / ``many``); the two outcomes are then compared with those names
taken out: rows, events, times seen, first and last seen, finance's notes, reopenings.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from transfer_wallet import discrepancies
from transfer_wallet.discrepancies import Finding, clear_absent, record, record_many
from transfer_wallet.discrepancies import recording
from transfer_wallet.models import Discrepancy, DiscrepancyEvent, table_of

UTC = dt.timezone.utc
MONDAY_7AM = dt.datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
TUESDAY_7AM = MONDAY_7AM + dt.timedelta(days=1)
SUNDAY = dt.date(2026, 11, 23)
_discrepancies = table_of(Discrepancy)
_events = table_of(DiscrepancyEvent)


def amount_mismatch(way: str, tx: str, actual_minor: int = 1100) -> Finding:
    provider = f"acme-{way}"
    return Finding(
        kind="AMOUNT_MISMATCH", source="reconcile", fingerprint=f"reconcile:{provider}:{SUNDAY}:AMOUNT_MISMATCH:{tx}",
        provider=provider, business_date=SUNDAY, transfer_id=f"{way}-{tx}", provider_tx_id=f"px-{tx}",
        player_id="P1", currency="EUR", expected_minor=1000, actual_minor=actual_minor,
        difference_minor=actual_minor - 1000, fields={"amount": {"ledger": 1000, "provider": actual_minor}},
        detail=f"provider reports {actual_minor} minor units, ledger holds 1000")


def session_conflict(way: str) -> Finding:
    """A session finding without a fingerprint: identified by its kind and transfer id."""
    return Finding(kind="TRANSFER_CONFLICT", detail="provider answered twice", transfer_id=f"{way}-t-session",
                   currency="EUR", expected_minor=500, actual_minor=0, difference_minor=-500)


def monday(db, way: str) -> None:
    """A, B, C, D recorded; finance works on B and resolves C; D is no longer seen and clears."""
    found = {tx: db.transaction(lambda c, tx=tx: record(c, amount_mismatch(way, tx), now=MONDAY_7AM))
             for tx in ("A", "B", "C", "D")}
    db.transaction(lambda c: record(c, session_conflict(way), now=MONDAY_7AM))
    discrepancies.transition(db, found["B"], to_status="investigating", note="asked acme for the log",
                             actor="anna", now=MONDAY_7AM + dt.timedelta(hours=1))
    discrepancies.transition(db, found["C"], to_status="resolved", note="0.01 accepted", actor="anna",
                             now=MONDAY_7AM + dt.timedelta(hours=2))
    seen = {amount_mismatch(way, tx).identity() for tx in ("A", "B", "C")}
    db.transaction(lambda c: clear_absent(c, source="reconcile", provider=f"acme-{way}", business_date=SUNDAY,
                                          seen=seen, now=MONDAY_7AM + dt.timedelta(hours=3)))


def tuesday(way: str) -> list[Finding]:
    """Re-seen as is (A), changed while investigated (B), changed after resolved (C), back after
    cleared (D), new (E, F, G), new then changed in the same call (E), a session finding, A twice."""
    return [amount_mismatch(way, "A"), amount_mismatch(way, "B", 1200), amount_mismatch(way, "C", 401000),
            amount_mismatch(way, "D"), amount_mismatch(way, "E"), amount_mismatch(way, "F"),
            amount_mismatch(way, "E", 1300), session_conflict(way), amount_mismatch(way, "G"),
            amount_mismatch(way, "A")]


def one_by_one(db, findings: list[Finding], now: dt.datetime) -> list[int]:
    return db.transaction(lambda c: [record(c, finding, now=now) for finding in findings])


def all_at_once(db, findings: list[Finding], now: dt.datetime) -> list[int]:
    return db.transaction(lambda c: record_many(c, findings, now=now))


def outcome(db, way: str, ids: list[int]) -> dict:
    """Everything recorded the ``way`` way, with its names and database ids taken out."""
    def plain(value):
        return value.replace(way, "WAY") if isinstance(value, str) else value

    def read(connection) -> dict:
        rows = connection.execute(select(_discrepancies).where(
            _discrepancies.c.fingerprint.contains(way) | _discrepancies.c.transfer_id.contains(way))
            .order_by(_discrepancies.c.id)).mappings().all()
        fingerprint_of = {row["id"]: plain(row["fingerprint"]) for row in rows}
        events = connection.execute(select(_events).where(_events.c.discrepancy_id.in_(list(fingerprint_of)))
                                    .order_by(_events.c.id)).mappings().all()
        history: dict[str, list[tuple]] = {}
        for e in events:  # each discrepancy's own history, in order (across them, batching reorders)
            history.setdefault(fingerprint_of[e["discrepancy_id"]], []).append(
                (e["at"], e["actor"], e["action"], e["from_status"], e["to_status"], plain(e["note"])))
        return {
            "rows": [{name: plain(value) for name, value in row.items() if name != "id"} for row in rows],
            "history": history,
            "returned": [fingerprint_of[i] for i in ids],
        }

    return db.transaction(read, readonly=True)


@pytest.mark.parametrize("batch", [3, recording.RECORD_BATCH], ids=["batches-of-3", "one-batch"])
def test_a_mix_of_new_existing_and_repeated_findings_ends_as_recording_them_one_by_one(db, monkeypatch, batch):
    monkeypatch.setattr(recording, "RECORD_BATCH", batch)
    monday(db, "one")
    monday(db, "many")
    one_ids = one_by_one(db, tuesday("one"), TUESDAY_7AM)
    many_ids = all_at_once(db, tuesday("many"), TUESDAY_7AM)
    one, many = outcome(db, "one", one_ids), outcome(db, "many", many_ids)
    assert many == one
    # and the story itself, so that "equal" is not "equally wrong"
    status = {row["fingerprint"].rsplit(":", 1)[-1]: (row["status"], row["times_seen"], row["note"])
              for row in many["rows"]}
    assert status == {
        "A": ("open", 3, None), "B": ("investigating", 2, "asked acme for the log"),
        "C": ("open", 2, "0.01 accepted"), "D": ("open", 2, None), "E": ("open", 2, None),
        "F": ("open", 1, None), "G": ("open", 1, None), "WAY-t-session": ("open", 2, None)}
    tuesday_actions = {fp.rsplit(":", 1)[-1]: [event[2] for event in events if event[0] == TUESDAY_7AM]
                       for fp, events in many["history"].items()}
    assert tuesday_actions == {"A": [], "B": ["changed"], "C": ["reopened"], "D": ["reopened"],
                               "E": ["recorded", "changed"], "F": ["recorded"], "G": ["recorded"], "WAY-t-session": []}
    first_seen = {row["fingerprint"].rsplit(":", 1)[-1]: (row["created_at"], row["last_seen_at"])
                  for row in many["rows"]}
    assert first_seen["A"] == (MONDAY_7AM, TUESDAY_7AM) and first_seen["G"] == (TUESDAY_7AM, TUESDAY_7AM)
    assert many_ids[0] == many_ids[-1] and many_ids[4] == many_ids[6]


def test_more_new_findings_than_a_batch_are_all_inserted_once_each_in_order(db):
    findings = [amount_mismatch("many", f"t{n:04d}") for n in range(3 * recording.RECORD_BATCH + 7)]
    ids = all_at_once(db, findings, MONDAY_7AM)
    assert ids == sorted(ids) and len(set(ids)) == len(findings)
    again = all_at_once(db, findings, TUESDAY_7AM)
    assert again == ids
    result = outcome(db, "many", ids)
    assert [row["times_seen"] for row in result["rows"]] == [2] * len(findings)
    assert [[event[2] for event in events] for events in result["history"].values()] == [["recorded"]] * len(findings)
    assert result["returned"] == [row["fingerprint"] for row in result["rows"]]


def test_recording_nothing_writes_nothing(db):
    assert all_at_once(db, [], MONDAY_7AM) == []
    assert outcome(db, "many", []) == {"rows": [], "history": {}, "returned": []}


def test_each_batch_of_new_findings_is_one_insert_of_rows_and_one_of_their_events(db):
    from sqlalchemy import event

    statements: list[str] = []

    def seen(_connection, _cursor, statement, *_):
        statements.append(" ".join(statement.split()[:3]))

    findings = [amount_mismatch("many", f"t{n:04d}") for n in range(2 * recording.RECORD_BATCH + 1)]
    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        all_at_once(db, findings, MONDAY_7AM)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    inserts = [s for s in statements if s.startswith("INSERT INTO")]
    assert inserts == ["INSERT INTO discrepancies", "INSERT INTO discrepancy_events"] * 3


def wednesday_base(db, way: str) -> None:
    """Monday's story (A open, B investigating, C resolved, D cleared), then E recorded and written off."""
    monday(db, way)
    found = db.transaction(lambda c: record(c, amount_mismatch(way, "E"), now=MONDAY_7AM))
    discrepancies.transition(db, found, to_status="written_off", note="too small to chase", actor="anna",
                             now=MONDAY_7AM + dt.timedelta(hours=4))


def seen_again(way: str) -> list[Finding]:
    """Only findings seen before: C as it was (resolved stays), E changed (written off reopens), D three
    times (cleared reopens, then nothing, then a change), B as it was, A changed twice."""
    return [amount_mismatch(way, "C"), amount_mismatch(way, "E", 1500), amount_mismatch(way, "D"),
            amount_mismatch(way, "A", 1200), amount_mismatch(way, "D"), amount_mismatch(way, "B"),
            amount_mismatch(way, "D", 900), amount_mismatch(way, "A", 1300)]


@pytest.mark.parametrize("batch", [2, recording.RECORD_BATCH], ids=["batches-of-2", "one-batch"])
def test_findings_seen_again_in_every_finance_state_end_as_recording_them_one_by_one(db, monkeypatch, batch):
    monkeypatch.setattr(recording, "RECORD_BATCH", batch)
    wednesday_base(db, "one")
    wednesday_base(db, "many")
    one_ids = one_by_one(db, seen_again("one"), TUESDAY_7AM)
    many_ids = all_at_once(db, seen_again("many"), TUESDAY_7AM)
    one, many = outcome(db, "one", one_ids), outcome(db, "many", many_ids)
    assert many == one
    status = {row["fingerprint"].rsplit(":", 1)[-1]: (row["status"], row["times_seen"], row["actual_minor"],
                                                      row["closed_at"] is None) for row in many["rows"]}
    assert status == {"A": ("open", 3, 1300, True), "B": ("investigating", 2, 1100, True),
                      "C": ("resolved", 2, 1100, False), "D": ("open", 4, 900, True),
                      "E": ("open", 2, 1500, True), "WAY-t-session": ("open", 1, 0, True)}
    tuesday_actions = {fp.rsplit(":", 1)[-1]: [event[2] for event in events if event[0] == TUESDAY_7AM]
                       for fp, events in many["history"].items()}
    assert tuesday_actions == {"A": ["changed", "changed"], "B": [], "C": [], "D": ["reopened", "changed"],
                               "E": ["reopened"], "WAY-t-session": []}


def test_findings_seen_again_cost_a_few_statements_per_batch_not_a_few_per_finding(db):
    from sqlalchemy import event

    findings = [amount_mismatch("many", f"t{n:04d}") for n in range(2 * recording.RECORD_BATCH + 1)]
    all_at_once(db, findings, MONDAY_7AM)
    statements: list[str] = []

    def seen(_connection, _cursor, statement, *_):
        statements.append(" ".join(statement.split()[:2]))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        ids = all_at_once(db, [amount_mismatch("many", f"t{n:04d}", 1200) for n in range(len(findings))],
                          TUESDAY_7AM)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    writes = [s for s in statements if s.split()[0] in ("SELECT", "INSERT", "UPDATE")]
    assert writes == ["INSERT INTO", "SELECT discrepancies.id,", "INSERT INTO", "UPDATE discrepancies"] * 3
    result = outcome(db, "many", ids)
    assert {row["times_seen"] for row in result["rows"]} == {2}
    assert {tuple(e[2] for e in events) for events in result["history"].values()} == {("recorded", "changed")}


def test_a_naive_time_is_refused_by_record_many_as_by_record_and_nothing_is_written(db):
    from sqlalchemy.exc import StatementError

    naive = MONDAY_7AM.replace(tzinfo=None)
    for way in (record, record_many):
        with pytest.raises((ValueError, StatementError), match="naive datetime"):
            db.transaction(lambda c, way=way: way(c, amount_mismatch("many", "A") if way is record
                                                  else [amount_mismatch("many", "A")], now=naive))
    assert outcome(db, "many", []) == {"rows": [], "history": {}, "returned": []}
