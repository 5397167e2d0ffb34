"""Discrepancies: the only code that writes, lists and moves them through their workflow.

Sessions (conservation, transfer conflicts, suspicious transfer-outs) and
reconciliation (report against ledger) both record what finance must look at
through ``record``; nothing else inserts into or updates the ``discrepancies``
table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from transfer_wallet.models import Discrepancy

_discrepancies = Discrepancy.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Finding:
    """A new discrepancy as its source sees it (amounts in minor units of ``currency``)."""

    kind: str
    detail: str
    provider: str | None = None
    session_id: str | None = None
    transfer_id: str | None = None
    player_id: str | None = None
    currency: str | None = None
    expected_minor: int | None = None
    actual_minor: int | None = None
    fingerprint: str | None = None  # stable identity; default: kind + transfer (or session) id


def record(connection: Connection, finding: Finding, *, now: dt.datetime) -> int:
    """Record ``finding`` as an open discrepancy inside the caller's transaction; returns its id."""
    subject = finding.transfer_id or finding.session_id or ""
    fingerprint = finding.fingerprint or f"session:{finding.kind}:{subject}"
    result = connection.execute(_discrepancies.insert().values(
        fingerprint=fingerprint, source="session", times_seen=1, last_seen_at=now, kind=finding.kind, provider=finding.provider, session_id=finding.session_id,
        transfer_id=finding.transfer_id, player_id=finding.player_id, currency=finding.currency,
        expected_minor=finding.expected_minor, actual_minor=finding.actual_minor,
        detail=finding.detail[:1000], status="open", created_at=now, updated_at=now,
    ))
    return int(result.inserted_primary_key[0])
