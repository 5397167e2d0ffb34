"""Discrepancy value objects: what the service returns (``DiscrepancyView``, its history, counts).

Amounts are ``Money`` in the discrepancy's currency; a discrepancy without a
currency (or with a code that is not a currency, e.g. from an unreadable report
row) has no ``Money`` amounts, only the raw minor units. ``as_dict`` is the one
rendering for ``--json`` and exports: amounts as exact decimal strings in major
units, times ISO-8601 UTC.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Mapping

from sqlalchemy.engine import Row

from transfer_wallet.errors import ValidationError
from transfer_wallet.money import Currency, Money, currency

SECONDS_PER_DAY = 86_400


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.timezone.utc).isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class DiscrepancyEventView:
    """One row of a discrepancy's append-only history: who did what, when, from which status to which."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        """The event as plain JSON-ready values (time ISO-8601 UTC)."""
        return {"id": self.id, "at": _iso(self.at), "actor": self.actor, "action": self.action,
                "from_status": self.from_status, "to_status": self.to_status, "note": self.note}


@dataclass(frozen=True, slots=True)
class DiscrepancyView:
    """A discrepancy as finance sees it; ``history`` is None when not loaded (lists), else oldest first."""

    id: int
    fingerprint: str
    source: str
    kind: str
    status: str
    provider: str | None
    business_date: dt.date | None
    run_id: int | None
    session_id: str | None
    transfer_id: str | None
    provider_tx_id: str | None
    player_id: str | None
    currency: str | None
    expected_minor: int | None
    actual_minor: int | None
    difference_minor: int | None
    fields: Mapping[str, Any]
    detail: str
    note: str | None
    changed_by: str | None
    times_seen: int
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    age_days: int
    history: tuple[DiscrepancyEventView, ...] | None = None

    def _unit(self) -> Currency | None:
        if not self.currency:
            return None
        try:
            return currency(self.currency)
        except ValidationError:  # a report's unknown code: keep the raw minor units only
            return None

    def _money(self, amount_minor: int | None) -> Money | None:
        unit = self._unit()
        return Money(amount_minor, unit) if amount_minor is not None and unit is not None else None

    @property
    def expected(self) -> Money | None:
        """What our side holds (the ledger, or the mirrored balance)."""
        return self._money(self.expected_minor)

    @property
    def actual(self) -> Money | None:
        """What the provider says."""
        return self._money(self.actual_minor)

    @property
    def difference(self) -> Money | None:
        """Provider minus ledger."""
        return self._money(self.difference_minor)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; ``history`` only when it was loaded (``get``)."""
        amounts = {name: (money.format() if (money := getattr(self, name)) is not None else None)
                   for name in ("expected", "actual", "difference")}
        document: dict[str, Any] = {
            "id": self.id, "fingerprint": self.fingerprint, "source": self.source, "kind": self.kind,
            "status": self.status, "provider": self.provider,
            "business_date": self.business_date.isoformat() if self.business_date else None,
            "run_id": self.run_id, "session_id": self.session_id, "transfer_id": self.transfer_id,
            "provider_tx_id": self.provider_tx_id, "player_id": self.player_id, "currency": self.currency,
            **amounts,
            "expected_minor": self.expected_minor, "actual_minor": self.actual_minor,
            "difference_minor": self.difference_minor, "fields": dict(self.fields), "detail": self.detail,
            "note": self.note, "changed_by": self.changed_by, "times_seen": self.times_seen,
            "first_seen_at": _iso(self.first_seen_at), "last_seen_at": _iso(self.last_seen_at),
            "updated_at": _iso(self.updated_at), "closed_at": _iso(self.closed_at), "age_days": self.age_days,
        }
        if self.history is not None:
            document["history"] = [event.as_dict() for event in self.history]
        return document


@dataclass(frozen=True, slots=True)
class DiscrepancyCount:
    """How many discrepancies of one kind, provider and status there are, and since when the oldest."""

    kind: str
    provider: str | None
    status: str
    count: int
    oldest_first_seen_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {"kind": self.kind, "provider": self.provider, "status": self.status, "count": self.count,
                "oldest_first_seen_at": _iso(self.oldest_first_seen_at)}


def parse_fields(text: str | None) -> dict[str, Any]:
    """The stored ``fields`` JSON as a dict (an unreadable legacy value is kept as ``{"_raw": text}``)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_value": value}


def age_days(first_seen_at: dt.datetime, now: dt.datetime) -> int:
    """Whole days from first seen to ``now`` (never negative)."""
    return max(0, int((now - first_seen_at).total_seconds() // SECONDS_PER_DAY))


def view_from_row(row: Row[Any], now: dt.datetime,
                  history: tuple[DiscrepancyEventView, ...] | None = None) -> DiscrepancyView:
    """A ``DiscrepancyView`` from a ``discrepancies`` row."""
    return DiscrepancyView(
        id=row.id, fingerprint=row.fingerprint, source=row.source, kind=row.kind, status=row.status,
        provider=row.provider, business_date=row.business_date, run_id=row.run_id, session_id=row.session_id,
        transfer_id=row.transfer_id, provider_tx_id=row.provider_tx_id, player_id=row.player_id,
        currency=row.currency, expected_minor=row.expected_minor, actual_minor=row.actual_minor,
        difference_minor=row.difference_minor, fields=parse_fields(row.fields), detail=row.detail, note=row.note,
        changed_by=row.changed_by, times_seen=row.times_seen, first_seen_at=row.created_at,
        last_seen_at=row.last_seen_at, updated_at=row.updated_at, closed_at=row.closed_at,
        age_days=age_days(row.created_at, now), history=history,
    )


def event_from_row(row: Row[Any]) -> DiscrepancyEventView:
    """A ``DiscrepancyEventView`` from a ``discrepancy_events`` row."""
    return DiscrepancyEventView(id=row.id, at=row.at, actor=row.actor, action=row.action,
                                from_status=row.from_status, to_status=row.to_status, note=row.note)
