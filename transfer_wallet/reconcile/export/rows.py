"""The rows every export shows: one dict per discrepancy of the run's (provider, business date).

Amounts are exact major-unit ``Decimal`` values (each side in its own currency);
times are aware UTC datetimes; ``fields`` reads ``name(provider=..., ledger=...)``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from transfer_wallet.models import Discrepancy, table_of
from transfer_wallet.money import Money, MoneyError, currency
from transfer_wallet.reconcile.classify import SOURCE, fingerprint

_discrepancies = table_of(Discrepancy)

#: The fixed column order of discrepancies.csv (and the Discrepancies sheet).
DISCREPANCY_COLUMNS: tuple[str, ...] = (
    "discrepancy_id", "provider", "business_date", "type", "fields", "reference", "provider_tx_id", "player_id",
    "currency", "amount_ledger", "amount_provider", "amount_diff", "status_ledger", "status_provider", "at_ledger",
    "at_provider", "row_number", "detail", "first_seen", "times_seen", "age_days", "workflow_status", "note",
)


def amount(amount_minor: Any, code: Any) -> Decimal | None:
    """Minor units as an exact major-unit Decimal of ``code`` (None when either is missing)."""
    if amount_minor is None or code is None or amount_minor != amount_minor:  # NaN/NA guard
        return None
    try:
        return Money(int(amount_minor), currency(str(code))).to_decimal()
    except (MoneyError, TypeError, ValueError):
        return Decimal(int(amount_minor))


def _clean(value: Any) -> Any:
    try:
        return None if value is None or value != value else value  # NA and NaN are not equal to themselves
    except TypeError:  # pandas NA refuses truth tests
        return None


#: What the exports take from a run's breaks frame (the rest is in the stored discrepancy).
_BREAK_COLUMNS = ("reference", "l_currency", "p_currency", "l_status", "p_status", "l_created_at", "p_created_at",
                  "row_number")


def _break_index(result: Any) -> dict[str, dict[str, Any]]:
    """The run's breaks by fingerprint, each as a dict of ``_BREAK_COLUMNS`` (those the frame has)."""
    breaks = result.breaks
    if not len(breaks):
        return {}
    records = breaks[[c for c in _BREAK_COLUMNS if c in breaks.columns]].to_dict("records")
    return {fingerprint(result.provider, result.business_date, str(kind), str(key)): record
            for kind, key, record in zip(breaks["kind"], breaks["key"], records, strict=True)}


def _fields_text(text: str | None) -> str:
    if not text:
        return ""
    parts = [f"{name}(provider={v.get('provider')}, ledger={v.get('ledger')})" for name, v in json.loads(text).items()]
    return "; ".join(parts)


def discrepancy_rows(connection: Connection, result: Any, *, now: dt.datetime) -> list[dict[str, Any]]:
    """Every reconcile discrepancy of the run's provider and business date, largest difference first."""
    table = _discrepancies
    stored = connection.execute(select(table).where(
        table.c.source == SOURCE, table.c.provider == result.provider, table.c.business_date == result.business_date,
    ).order_by(table.c.id)).all()
    breaks = _break_index(result)
    rows = []
    for d in stored:
        b = {k: _clean(v) for k, v in breaks.get(d.fingerprint, {}).items()}
        l_code, p_code = b.get("l_currency") or d.currency, b.get("p_currency") or d.currency
        rows.append({
            "discrepancy_id": d.id, "provider": d.provider, "business_date": d.business_date, "type": d.kind,
            "fields": _fields_text(d.fields), "reference": b.get("reference") or d.transfer_id,
            "provider_tx_id": d.provider_tx_id, "player_id": d.player_id, "currency": d.currency,
            "amount_ledger": amount(d.expected_minor, l_code), "amount_provider": amount(d.actual_minor, p_code),
            "amount_diff": amount(d.difference_minor, d.currency), "status_ledger": b.get("l_status"),
            "status_provider": b.get("p_status"), "at_ledger": _utc(b.get("l_created_at")),
            "at_provider": _utc(b.get("p_created_at")), "row_number": b.get("row_number"), "detail": d.detail,
            "first_seen": d.created_at, "times_seen": d.times_seen, "age_days": max(0, (now - d.created_at).days),
            "workflow_status": d.status, "note": d.note,
        })
    rows.sort(key=lambda r: (-abs(r["amount_diff"] or 0), r["discrepancy_id"]))
    return rows


def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Count, sum of absolute differences and oldest age by type x currency (open and closed alike)."""
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "open": 0, "sum_abs_diff": Decimal(0), "oldest_age_days": 0})
    for row in rows:
        group = groups[(row["type"], row["currency"] or "")]
        group["count"] += 1
        group["open"] += row["workflow_status"] in ("open", "investigating")
        group["sum_abs_diff"] += abs(row["amount_diff"] or 0)
        group["oldest_age_days"] = max(group["oldest_age_days"], row["age_days"])
    return [{"type": kind, "currency": code, **values} for (kind, code), values in sorted(groups.items())]
