"""Recording discrepancies: what the system finds (``record``, ``record_many``) and what no longer appears
(``clear_absent``).

Sessions (conservation, transfer conflicts, suspicious transfer-outs) and
reconciliation (report against ledger) both record what finance must look at
through ``record``; nothing else inserts into or updates the ``discrepancies``
table, and every change leaves a row in the append-only ``discrepancy_events``.

A discrepancy's identity is its ``fingerprint``: recording the same finding
again (tomorrow's run, a re-run of the same window) bumps ``last_seen_at`` and
``times_seen`` and refreshes what the system computed (amounts, fields,
detail), but never touches what finance wrote (status, note). A ``cleared``
discrepancy that shows up again is reopened.

``record_many`` is ``record`` for a run's worth of findings, ``RECORD_BATCH`` at a
time: the new ones in one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` and one
insert of their ``recorded`` events; the ones seen before (their fingerprint existed,
or came earlier in the call) with one locking SELECT, one insert of their events and
one UPDATE of many rows. What a sighting does (``_sighting``: reopen, a change, or
nothing) is decided in one place for ``record`` and ``record_many``; the bulk
statements are in ``bulk``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from transfer_wallet.discrepancies import bulk
from transfer_wallet.models import OPEN_DISCREPANCY_STATUSES, Discrepancy, DiscrepancyEvent, table_of

_discrepancies = table_of(Discrepancy)
_events = table_of(DiscrepancyEvent)

SYSTEM_ACTOR = "system"
#: New findings per multi-row INSERT (21 bound parameters each: 10,500, under SQLite's 32,766).
RECORD_BATCH = 500
#: Ids per UPDATE of ``clear_absent`` (bound parameters, well under SQLite's limit).
CLEAR_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Finding:
    """A discrepancy as its source sees it (amounts in minor units of ``currency``).

    ``fields`` names every field that differs, with both values
    (``{"amount": {"provider": "10.00", "ledger": "9.00"}}``); ``difference_minor``
    is provider minus ledger. Without a ``fingerprint`` a session finding is
    identified by its kind and transfer (or session) id.
    """

    kind: str
    detail: str
    source: str = "session"
    fingerprint: str | None = None
    provider: str | None = None
    business_date: dt.date | None = None
    run_id: int | None = None
    session_id: str | None = None
    transfer_id: str | None = None
    provider_tx_id: str | None = None
    player_id: str | None = None
    currency: str | None = None
    expected_minor: int | None = None
    actual_minor: int | None = None
    difference_minor: int | None = None
    fields: Mapping[str, Any] | None = None

    def identity(self) -> str:
        """The stable fingerprint this finding is recorded under."""
        if self.fingerprint:
            return self.fingerprint
        return f"{self.source}:{self.kind}:{self.transfer_id or self.session_id or self.detail[:80]}"

    def computed_values(self) -> dict[str, Any]:
        """The columns the system computes (refreshed whenever the finding is seen again)."""
        return {
            "kind": self.kind, "provider": self.provider, "business_date": self.business_date, "run_id": self.run_id,
            "session_id": self.session_id, "transfer_id": self.transfer_id, "provider_tx_id": self.provider_tx_id,
            "player_id": self.player_id, "currency": self.currency, "expected_minor": self.expected_minor,
            "actual_minor": self.actual_minor, "difference_minor": self.difference_minor,
            "fields": _fields_json(self.fields) if self.fields else None,
            "detail": self.detail[:1000],
        }


FIELDS_MAX_CHARS = 4000


def _fields_json(fields: Mapping[str, Any]) -> str:
    """``fields`` as JSON that fits its column; too long, it is kept as a truncated text (still valid JSON)."""
    encoded = json.dumps(fields, sort_keys=True, default=str)
    if len(encoded) <= FIELDS_MAX_CHARS:
        return encoded
    # Re-encoding escapes at most doubles the (ASCII) text: half the column always fits.
    return json.dumps({"_truncated": encoded[: FIELDS_MAX_CHARS // 2 - 20]})


def _insert_statement(connection: Connection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(_discrepancies)


def _new_row(finding: Finding, now: dt.datetime, computed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``discrepancies`` row of a finding seen for the first time: open, seen once, now."""
    return dict(fingerprint=finding.identity(), source=finding.source, status="open", times_seen=1, created_at=now,
                last_seen_at=now, updated_at=now, **(finding.computed_values() if computed is None else computed))


def record(connection: Connection, finding: Finding, *, now: dt.datetime, actor: str = SYSTEM_ACTOR) -> int:
    """Record ``finding`` inside the caller's transaction; returns the discrepancy's id.

    New: inserted ``open`` with a ``recorded`` event. Seen before: last seen and
    times seen move on, computed columns refresh, finance's status and note stay;
    a ``cleared`` one is reopened (``reopened`` event), and so is a resolved or
    written-off one whose amounts or differing fields changed (what finance
    accepted is not this); a change on an open one is a ``changed`` event. Safe against a concurrent
    writer of the same fingerprint (``INSERT ... ON CONFLICT DO NOTHING``).
    """
    fingerprint = finding.identity()
    inserted = connection.execute(
        _insert_statement(connection)
        .values(_new_row(finding, now))
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(_discrepancies.c.id)
    ).first()
    if inserted is not None:
        _event(connection, inserted.id, now, actor, "recorded", None, "open")
        return int(inserted.id)
    query = select(_discrepancies.c.id, _discrepancies.c.status, *(_discrepancies.c[name] for name in MATERIAL)).where(
        _discrepancies.c.fingerprint == fingerprint)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).one()
    computed = finding.computed_values()
    values: dict[str, Any] = {"last_seen_at": now, "times_seen": _discrepancies.c.times_seen + 1, "updated_at": now}
    values.update(computed)
    action, to_status, note = _sighting(row.status, row._mapping, computed)
    if action == "reopened":
        values.update(status="open", closed_at=None)
    if action is not None:
        _event(connection, row.id, now, actor, action, row.status, to_status, note)
    connection.execute(update(_discrepancies).where(_discrepancies.c.id == row.id).values(**values))
    return int(row.id)


def record_many(
    connection: Connection, findings: Iterable[Finding], *, now: dt.datetime, actor: str = SYSTEM_ACTOR,
) -> list[int]:
    """Record every one of ``findings`` inside the caller's transaction, as ``record`` called for each in
    turn would; returns their discrepancy ids, in order.

    Per ``RECORD_BATCH`` findings: the first finding of each fingerprint is inserted in one
    ``INSERT ... ON CONFLICT (fingerprint) DO NOTHING RETURNING`` with one insert of its
    ``recorded`` events; every other one (its fingerprint existed, or came earlier in the
    call) is then seen again, in order (``_record_seen``).
    """
    ordered = list(findings)
    ids: list[int] = []
    for first in range(0, len(ordered), RECORD_BATCH):
        ids += _record_batch(connection, ordered[first:first + RECORD_BATCH], now=now, actor=actor)
    return ids


def _record_batch(connection: Connection, batch: list[Finding], *, now: dt.datetime, actor: str) -> list[int]:
    """``record_many`` of at most ``RECORD_BATCH`` findings."""
    computed = [finding.computed_values() for finding in batch]  # once each (its fields JSON costs)
    firsts: dict[str, int] = {}  # fingerprint -> position of its first finding
    for position, finding in enumerate(batch):
        firsts.setdefault(finding.identity(), position)
    rows = bulk.insert_rows(connection, _discrepancies,
                            [_new_row(batch[position], now, computed[position]) for position in firsts.values()],
                            unique=["fingerprint"], returning=["id", "fingerprint"])
    inserted = {row.fingerprint: int(row.id) for row in rows}  # RETURNING order is not the VALUES order
    bulk.insert_rows(connection, _events, [_event_values(inserted[fingerprint], now, actor, "recorded", None, "open")
                                           for fingerprint in firsts if fingerprint in inserted])
    ids: list[int] = []
    again: list[int] = []  # positions in the batch of the findings seen again
    for position, finding in enumerate(batch):
        fresh = inserted.pop(finding.identity(), None)  # only its first finding was inserted
        ids.append(fresh if fresh is not None else -1)
        if fresh is None:
            again.append(position)
    seen_ids = _record_seen(connection, [(batch[position], computed[position]) for position in again],
                            now=now, actor=actor)
    for position, seen_id in zip(again, seen_ids, strict=True):
        ids[position] = seen_id
    return ids


def _record_seen(connection: Connection, findings: list[tuple[Finding, dict[str, Any]]], *, now: dt.datetime,
                 actor: str) -> list[int]:
    """``record`` for findings whose fingerprint exists, each seen again in turn (a fingerprint may come
    more than once): one locking SELECT of their rows, one insert of the events, then each discrepancy
    updated once (times seen up by its sightings, the last sighting's computed values) in one statement."""
    if not findings:
        return []
    query = select(_discrepancies.c.id, _discrepancies.c.fingerprint, _discrepancies.c.status,
                   *(_discrepancies.c[name] for name in MATERIAL)).where(
        _discrepancies.c.fingerprint.in_(sorted({finding.identity() for finding, _ in findings})))
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    state = {row.fingerprint: dict(row._mapping) for row in connection.execute(query)}
    events: list[dict[str, Any]] = []
    sightings: Counter[str] = Counter()
    latest: dict[str, dict[str, Any]] = {}
    reopened: set[str] = set()
    for finding, computed in findings:
        fingerprint = finding.identity()
        row = state[fingerprint]
        action, to_status, note = _sighting(row["status"], row, computed)
        if action is not None:
            events.append(_event_values(row["id"], now, actor, action, row["status"], to_status, note))
        if action == "reopened":
            row["status"] = "open"
            reopened.add(fingerprint)
        row.update((name, computed[name]) for name in MATERIAL)  # what the next sighting compares with
        sightings[fingerprint] += 1
        latest[fingerprint] = computed
    bulk.insert_rows(connection, _events, events)
    for group in (reopened, set(latest) - reopened):
        extra = {"status": "open", "closed_at": None} if group is reopened else {}
        bulk.update_rows(connection, _discrepancies, [
            {"id": state[fingerprint]["id"], "last_seen_at": now, "updated_at": now, **extra, **latest[fingerprint],
             "times_seen": sightings[fingerprint]} for fingerprint in sorted(group)], add=["times_seen"])
    return [int(state[finding.identity()]["id"]) for finding, _ in findings]


#: What makes a re-seen break a different break for finance: its amounts, currency and differing fields.
MATERIAL = ("currency", "expected_minor", "actual_minor", "difference_minor", "fields")
#: A cleared break that shows up again is open again.
REOPENED_WHEN_SEEN = frozenset({"cleared"})
#: A break finance closed comes back to them if it is seen again with other values (what they accepted is not this).
REOPENED_WHEN_CHANGED = frozenset({"resolved", "written_off"})


def _changes(row: Mapping[Any, Any], computed: Mapping[str, Any]) -> str | None:
    """``"difference_minor 1 -> 400000; ..."`` for the material values that differ, or None."""
    differences = [f"{name} {row[name]!r} -> {computed[name]!r}" for name in MATERIAL if row[name] != computed[name]]
    return "values changed: " + "; ".join(differences) if differences else None


def _sighting(status: str, row: Mapping[Any, Any], computed: Mapping[str, Any]) -> tuple[str | None, str, str | None]:
    """What seeing a recorded discrepancy (``status``, its stored ``row``) again with ``computed`` values
    does: ``(event action or None, status after, event note)``. A cleared one reopens; a resolved or
    written-off one reopens if its material values changed; any other change is a ``changed`` event."""
    changed = _changes(row, computed)
    if status in REOPENED_WHEN_SEEN or (changed and status in REOPENED_WHEN_CHANGED):
        return "reopened", "open", changed or "seen again"
    return ("changed", status, changed) if changed else (None, status, None)


def clear_absent(
    connection: Connection, *, source: str, provider: str, business_date: dt.date, seen: Collection[str],
    now: dt.datetime, actor: str = SYSTEM_ACTOR, only: Collection[str] | None = None,
) -> int:
    """Close as ``cleared`` the still-open discrepancies of one (source, provider, business date)
    whose fingerprint is not in ``seen`` (the break no longer appears); returns how many.

    ``only``: consider just these fingerprints (a break another day's run has explained),
    leaving every other open one of the window as it is.

    The open ones are read (locked on PostgreSQL), those to close are closed by one UPDATE per
    former status and ``CLEAR_BATCH`` ids (``RETURNING`` the ids it changed), and their
    ``cleared`` events are one insert: a day's run no longer makes a statement per break.
    """
    query = select(_discrepancies.c.id, _discrepancies.c.status, _discrepancies.c.fingerprint).where(
        _discrepancies.c.source == source, _discrepancies.c.provider == provider,
        _discrepancies.c.business_date == business_date,
        _discrepancies.c.status.in_(OPEN_DISCREPANCY_STATUSES),
    ).order_by(_discrepancies.c.id)
    if connection.dialect.name == "postgresql":  # a finance move waits for us (SQLite: BEGIN IMMEDIATE)
        query = query.with_for_update()
    seen = set(seen)
    wanted = None if only is None else set(only)
    absent = [row for row in connection.execute(query)
              if row.fingerprint not in seen and (wanted is None or row.fingerprint in wanted)]
    cleared: list[tuple[int, str]] = []
    for status in OPEN_DISCREPANCY_STATUSES:  # the event names the status it left
        ids = [row.id for row in absent if row.status == status]
        for first in range(0, len(ids), CLEAR_BATCH):
            changed = connection.execute(  # the status condition: never an event for a change that did not happen
                update(_discrepancies).where(_discrepancies.c.id.in_(ids[first:first + CLEAR_BATCH]),
                                             _discrepancies.c.status == status)
                .values(status="cleared", closed_at=now, updated_at=now).returning(_discrepancies.c.id)
            ).scalars().all()
            cleared += [(int(changed_id), status) for changed_id in changed]
    bulk.insert_rows(connection, _events, [
        _event_values(changed_id, now, actor, "cleared", status, "cleared", "no longer seen")
        for changed_id, status in sorted(cleared)])
    return len(cleared)


def _event(
    connection: Connection, discrepancy_id: int, at: dt.datetime, actor: str, action: str,
    from_status: str | None, to_status: str | None, note: str | None = None,
) -> None:
    connection.execute(_events.insert().values(
        _event_values(discrepancy_id, at, actor, action, from_status, to_status, note)))


def _event_values(
    discrepancy_id: int, at: dt.datetime, actor: str, action: str, from_status: str | None,
    to_status: str | None, note: str | None = None,
) -> dict[str, Any]:
    """A ``discrepancy_events`` row."""
    return dict(discrepancy_id=discrepancy_id, at=at, actor=actor, action=action, from_status=from_status,
                to_status=to_status, note=note)
