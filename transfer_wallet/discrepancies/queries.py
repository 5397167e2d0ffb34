"""Reading discrepancies: filtered lists (newest first), one with its history, counts for summaries.

Each function opens one read-only unit of work on the ``Database``; nothing
here writes. Filters are validated (a bad value is a ``ValidationError``, an
unknown id a ``NotFoundError``) and every list is bounded by ``limit``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Collection, Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from transfer_wallet.db import Database
from transfer_wallet.discrepancies.views import (
    DiscrepancyCount,
    DiscrepancyView,
    event_from_row,
    view_from_row,
)
from transfer_wallet.errors import NotFoundError, ValidationError
from transfer_wallet.models import (
    DISCREPANCY_STATUSES,
    OPEN_DISCREPANCY_STATUSES,
    Discrepancy,
    DiscrepancyEvent,
    table_of,
    utc_now,
)

_discrepancies = table_of(Discrepancy)
_events = table_of(DiscrepancyEvent)

UNRESOLVED = "unresolved"
"""Pseudo-status for filters: every discrepancy that still needs someone (open or investigating)."""

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 100_000
MAX_AGE_DAYS = 36_500
MAX_HISTORY_EVENTS = 10_000
_NAME_MAX_CHARS = 32


def _statuses(status: str | Sequence[str] | None) -> list[str] | None:
    if status is None:
        return None
    wanted = [status] if isinstance(status, str) else list(status)
    if not wanted:
        return None
    expanded: list[str] = []
    for value in wanted:
        if value == UNRESOLVED:
            expanded.extend(OPEN_DISCREPANCY_STATUSES)
        elif value in DISCREPANCY_STATUSES:
            expanded.append(value)
        else:
            choices = ", ".join((*DISCREPANCY_STATUSES, UNRESOLVED))
            raise ValidationError(f"unknown discrepancy status {value!r}: choose from {choices}")
    return sorted(set(expanded))


def _name(value: str | None, what: str) -> str | None:
    if value is not None and (not value or len(value) > _NAME_MAX_CHARS or "\x00" in value):
        raise ValidationError(f"{what} must be 1 to {_NAME_MAX_CHARS} characters")
    return value


def _filtered(
    query: Select[Any], *, status: str | Sequence[str] | None, kind: str | None, provider: str | None,
    business_date: dt.date | None, older_than_days: int | None, now: dt.datetime,
) -> Select[Any]:
    table = _discrepancies
    statuses = _statuses(status)
    if statuses is not None:
        query = query.where(table.c.status.in_(statuses))
    if _name(kind, "type") is not None:
        query = query.where(table.c.kind == kind)
    if _name(provider, "provider") is not None:
        query = query.where(table.c.provider == provider)
    if business_date is not None:
        query = query.where(table.c.business_date == business_date)
    if older_than_days is not None:
        if not 0 <= older_than_days <= MAX_AGE_DAYS:
            raise ValidationError(f"older than must be 0 to {MAX_AGE_DAYS} days, not {older_than_days}")
        query = query.where(table.c.created_at <= now - dt.timedelta(days=older_than_days))
    return query


def list_discrepancies(
    db: Database, *, status: str | Sequence[str] | None = None, kind: str | None = None,
    provider: str | None = None, business_date: dt.date | None = None, older_than_days: int | None = None,
    limit: int = DEFAULT_LIST_LIMIT, offset: int = 0, now: dt.datetime | None = None,
) -> list[DiscrepancyView]:
    """Discrepancies matching every given filter, newest first, at most ``limit`` after skipping ``offset``.

    ``status`` is one status or several (``"unresolved"`` = open or investigating);
    ``older_than_days`` keeps those first seen at least that many days before
    ``now`` (their ``age_days`` is at least that). Views carry no history (see ``get``).
    """
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValidationError(f"limit must be 1 to {MAX_LIST_LIMIT}, not {limit}")
    if offset < 0:
        raise ValidationError(f"offset must be 0 or more, not {offset}")
    now = now or utc_now()
    query = _filtered(select(_discrepancies), status=status, kind=kind, provider=provider,
                      business_date=business_date, older_than_days=older_than_days, now=now)
    query = query.order_by(_discrepancies.c.id.desc()).limit(limit).offset(offset)
    rows = db.transaction(lambda connection: connection.execute(query).all(), readonly=True)
    return [view_from_row(row, now) for row in rows]


def count_discrepancies(
    db: Database, *, status: str | Sequence[str] | None = None, kind: str | None = None,
    provider: str | None = None, business_date: dt.date | None = None, older_than_days: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """How many discrepancies ``list_discrepancies`` with the same filters pages through (one COUNT)."""
    query = _filtered(select(func.count()).select_from(_discrepancies), status=status, kind=kind,
                      provider=provider, business_date=business_date, older_than_days=older_than_days,
                      now=now or utc_now())
    return int(db.transaction(lambda connection: connection.execute(query).scalar_one(), readonly=True))


def read(connection: Connection, discrepancy_id: int, now: dt.datetime) -> DiscrepancyView:
    """One discrepancy with its history (oldest event first), inside the caller's transaction."""
    row = connection.execute(select(_discrepancies).where(_discrepancies.c.id == discrepancy_id)).first()
    if row is None:
        raise NotFoundError(f"no discrepancy {discrepancy_id}")
    events = connection.execute(
        select(_events).where(_events.c.discrepancy_id == discrepancy_id).order_by(_events.c.id)
        .limit(MAX_HISTORY_EVENTS)
    ).all()
    return view_from_row(row, now, tuple(event_from_row(event) for event in events))


def get(db: Database, discrepancy_id: int, *, now: dt.datetime | None = None) -> DiscrepancyView:
    """The discrepancy ``discrepancy_id`` with its history; ``NotFoundError`` if there is none."""
    moment = now or utc_now()
    return db.transaction(lambda connection: read(connection, discrepancy_id, moment), readonly=True)


def counts(
    db: Database, *, status: str | Sequence[str] | None = None, kind: str | None = None,
    provider: str | None = None, business_date: dt.date | None = None, older_than_days: int | None = None,
    now: dt.datetime | None = None,
) -> list[DiscrepancyCount]:
    """How many discrepancies per (kind, provider, status), with the oldest first seen; same filters as the list.

    Sorted by kind, provider (none first), status: "discrepancies by type and provider" for summaries.
    """
    now = now or utc_now()
    table = _discrepancies
    query = select(table.c.kind, table.c.provider, table.c.status, func.count().label("total"),
                   func.min(table.c.created_at).label("oldest"))
    query = _filtered(query, status=status, kind=kind, provider=provider, business_date=business_date,
                      older_than_days=older_than_days, now=now)
    query = query.group_by(table.c.kind, table.c.provider, table.c.status)
    rows = db.transaction(lambda connection: connection.execute(query).all(), readonly=True)
    found = [DiscrepancyCount(kind=row.kind, provider=row.provider, status=row.status, count=int(row.total),
                              oldest_first_seen_at=_as_utc(row.oldest)) for row in rows]
    return sorted(found, key=lambda c: (c.kind, c.provider is not None, c.provider or "", c.status))


def count_for_sessions(db: Database, session_ids: Collection[str]) -> int:
    """How many discrepancies name one of ``session_ids`` (read in chunks: any number of ids)."""
    ids = sorted(set(session_ids))

    def work(connection: Connection) -> int:
        return sum(
            connection.execute(select(func.count()).select_from(_discrepancies)
                               .where(_discrepancies.c.session_id.in_(ids[start:start + _ID_CHUNK]))).scalar_one()
            for start in range(0, len(ids), _ID_CHUNK)
        )

    return db.transaction(work, readonly=True)


_ID_CHUNK = 500


def _as_utc(value: Any) -> dt.datetime:
    """``min()`` over a UTC column loses the column type on SQLite (naive text): make it aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
