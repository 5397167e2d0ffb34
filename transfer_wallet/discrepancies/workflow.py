"""The finance workflow: who moves a discrepancy to which status, with a note, as append-only history.

The allowed moves (``TRANSITIONS``)::

    from \\ to      open   investigating   resolved   written_off   cleared
    open            -      finance         finance    finance       system
    investigating   finance  -             finance    finance       system
    resolved        .      .               .          .             .
    written_off     .      .               .          .             .
    cleared         system .               .          .             .

- Finance (``transition``) moves an open or investigating discrepancy; a move
  back from investigating to open hands it back to the queue. Resolved and
  written off are final: resolving twice, or moving a closed one, is an
  ``InvalidStateError``. A move to the status it already has is refused too.
- Only the system clears a break that no longer appears, and reopens a cleared
  one that shows up again (``record`` / ``clear_absent``); finance never sets
  or leaves ``cleared``.
- Every move and every note (``add_note``, allowed in any status) writes one
  ``discrepancy_events`` row (who, when, from, to, note) in the same
  transaction. The update is conditional on the status that was read: if
  another writer changed it in between, nothing is written and
  ``ConcurrencyError`` ("changed concurrently; try again") is raised.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from transfer_wallet.db import Database
from transfer_wallet.discrepancies.queries import read
from transfer_wallet.discrepancies.recording import SYSTEM_ACTOR, _event
from transfer_wallet.discrepancies.views import DiscrepancyView
from transfer_wallet.errors import ConcurrencyError, InvalidStateError, NotFoundError, ValidationError
from transfer_wallet.models import DISCREPANCY_STATUSES, Discrepancy, table_of, utc_now

_discrepancies = table_of(Discrepancy)

TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"investigating", "resolved", "written_off"}),
    "investigating": frozenset({"open", "resolved", "written_off"}),
    "resolved": frozenset(),
    "written_off": frozenset(),
    "cleared": frozenset(),
}
"""The moves finance may make: from status -> the statuses it may move to."""

CLOSED_STATUSES = ("resolved", "written_off", "cleared")
FINANCE_STATUSES = ("open", "investigating", "resolved", "written_off")
NOTE_MAX_CHARS = 2000
ACTOR_MAX_CHARS = 64
_ACTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._@' -]{0,62}[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def validate_actor(actor: str) -> str:
    """``actor`` if it is a person's name or login (letters, digits, space . _ @ ' -, <= 64 chars), else ``ValidationError``."""
    if not isinstance(actor, str) or not _ACTOR.fullmatch(actor):
        shown = repr(actor)[:80]
        raise ValidationError(
            f"actor {shown} is not a name: 1 to {ACTOR_MAX_CHARS} letters, digits, spaces or . _ @ ' -"
        )
    if actor.lower() == SYSTEM_ACTOR:
        raise ValidationError(f"actor {actor!r} is reserved for automatic changes; give your own name")
    return actor


def validate_note(note: str) -> str:
    """``note`` without surrounding blanks if it is 1 to 2000 characters of text, else ``ValidationError``."""
    if not isinstance(note, str) or not note.strip():
        raise ValidationError("a note is required: say what was found or done")
    note = note.strip()
    if len(note) > NOTE_MAX_CHARS:
        raise ValidationError(f"note is {len(note)} characters; at most {NOTE_MAX_CHARS}")
    if _CONTROL.search(note):
        raise ValidationError("note contains a control character (NUL or similar); only text, tabs and newlines")
    return note


def check_move(discrepancy_id: int, from_status: str, to_status: str) -> None:
    """Refuse a move the workflow does not allow (``InvalidStateError``), see ``TRANSITIONS``."""
    if from_status == to_status:
        raise InvalidStateError(f"discrepancy {discrepancy_id} is already {to_status}")
    if from_status in CLOSED_STATUSES:
        raise InvalidStateError(
            f"discrepancy {discrepancy_id} is already closed as {from_status}; it cannot move to {to_status}"
        )
    if to_status not in TRANSITIONS[from_status]:
        raise InvalidStateError(f"discrepancy {discrepancy_id} cannot move from {from_status} to {to_status}")


def _current_status(connection: Connection, discrepancy_id: int) -> str:
    status = connection.execute(
        select(_discrepancies.c.status).where(_discrepancies.c.id == discrepancy_id)
    ).scalar()
    if status is None:
        raise NotFoundError(f"no discrepancy {discrepancy_id}")
    return str(status)


def apply_change(
    connection: Connection, discrepancy_id: int, *, read_status: str, to_status: str, action: str,
    note: str, actor: str, now: dt.datetime,
) -> None:
    """Write the change and its event, only if the status is still ``read_status``; else ``ConcurrencyError``."""
    values: dict[str, object] = {"status": to_status, "note": note, "changed_by": actor, "updated_at": now}
    if to_status != read_status:
        values["closed_at"] = now if to_status in CLOSED_STATUSES else None
    changed = connection.execute(
        update(_discrepancies)
        .where(_discrepancies.c.id == discrepancy_id, _discrepancies.c.status == read_status)
        .values(**values)
    ).rowcount
    if changed != 1:
        raise ConcurrencyError(f"discrepancy {discrepancy_id} changed concurrently; try again")
    _event(connection, discrepancy_id, now, actor, action, read_status, to_status, note)


def transition(
    db: Database, discrepancy_id: int, *, to_status: str, note: str, actor: str, now: dt.datetime | None = None,
) -> DiscrepancyView:
    """Move a discrepancy to ``to_status`` with ``note`` by ``actor``; returns it with its history.

    ``NotFoundError`` for an unknown id, ``InvalidStateError`` for a move the
    workflow refuses (see the module docstring), ``ValidationError`` for a bad
    status, note or actor, ``ConcurrencyError`` if another writer changed it
    meanwhile. Nothing is written unless the move succeeds.
    """
    if to_status not in DISCREPANCY_STATUSES:
        raise ValidationError(f"unknown status {to_status!r}: choose from {', '.join(FINANCE_STATUSES)}")
    if to_status == "cleared":
        raise ValidationError("only the system clears a discrepancy (when the break no longer appears)")
    note, actor = validate_note(note), validate_actor(actor)
    moment = now or utc_now()

    def work(connection: Connection) -> DiscrepancyView:
        read_status = _current_status(connection, discrepancy_id)
        check_move(discrepancy_id, read_status, to_status)
        apply_change(connection, discrepancy_id, read_status=read_status, to_status=to_status, action="transition",
                     note=note, actor=actor, now=moment)
        return read(connection, discrepancy_id, moment)

    return db.transaction(work)


def add_note(
    db: Database, discrepancy_id: int, note: str, actor: str, *, now: dt.datetime | None = None,
) -> DiscrepancyView:
    """Add ``note`` by ``actor`` without changing the status (any status, closed ones too); returns it with history.

    The note becomes the discrepancy's current note and a ``note`` event.
    """
    note, actor = validate_note(note), validate_actor(actor)
    moment = now or utc_now()

    def work(connection: Connection) -> DiscrepancyView:
        read_status = _current_status(connection, discrepancy_id)
        apply_change(connection, discrepancy_id, read_status=read_status, to_status=read_status, action="note",
                     note=note, actor=actor, now=moment)
        return read(connection, discrepancy_id, moment)

    return db.transaction(work)
