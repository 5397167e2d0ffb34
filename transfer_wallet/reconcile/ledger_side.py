"""The ledger side of a reconciliation: the provider's transfers of one business day, one query.

The business day is the provider's report day in its report timezone (``[00:00,
24:00)`` local, 23 or 25 hours around a DST change), widened by
``cutoff_margin_s`` on each side so that a transfer whose counterpart lies
across the cut-off can still be paired (``TIMING_CUTOFF``). The time used is the
transfer's ``created_at``: when we sent it, immutable, indexed
(``ix_transfers_provider_created_at``). **A ledger transfer's business day is the
day of its ``created_at``** (the day whose run reports it missing). When the
provider applied it can be later (a transfer in doubt for hours, re-sent and
applied the next morning, or a day later): such a transfer turns up in another
day's report under its reference. So the report's references that the window
does not hold are looked up by id too (``references``: one more query per 1,000
ids, primary-key lookups), marked ``in_window`` false, and paired across days like
a cut-off pair (``store`` remembers it, so its own day does not call it missing).

A transfer-out of 0.00 settled here (``provider_tx_id`` ``SETTLED_LOCALLY``)
never reached the provider and is not read.

Amounts are the **game** amounts (minor units of the game currency): the report is
in the provider's currency, not the player's wallet currency.

=================  ===================  ================================================
column             dtype                meaning
=================  ===================  ================================================
transfer_id        string               our transfer id (the report's ``reference``)
provider_tx_id     string (may be NA)   the provider's id, once it answered
player_id          string
direction          string: IN | OUT
amount_minor       Int64 (may be NA)    game amount; NA for a withdraw-all not answered
currency           string               game currency
status             string               completed | refused | pending | in_doubt
created_at         datetime64[ns, UTC]
in_window          bool                 inside the business day (else in a margin)
=================  ===================  ================================================
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from transfer_wallet.models import Transfer, table_of
from transfer_wallet.sessions.state import SETTLED_LOCALLY

_transfers = table_of(Transfer)

#: Column -> dtype of the ledger-side frame.
LEDGER_DTYPES: dict[str, str] = {
    "transfer_id": "string",
    "provider_tx_id": "string",
    "player_id": "string",
    "direction": "string",
    "amount_minor": "Int64",
    "currency": "string",
    "status": "string",
    "created_at": "datetime64[ns, UTC]",
    "in_window": "bool",
}
#: Ledger statuses that mean "the provider applied it" / "it did not apply" / "not known yet".
APPLIED, NOT_APPLIED, UNSETTLED = "completed", "refused", ("pending", "in_doubt")
DEFAULT_CUTOFF_MARGIN_S = 3600
#: Ids per ``IN (...)`` of the by-reference lookup (well under SQLite's bound-parameter limit).
REFERENCE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class LedgerSide:
    """The ledger rows of a business day (plus margins) and the day's UTC window."""

    rows: pd.DataFrame
    start: dt.datetime
    end: dt.datetime
    margin_s: int


def business_window(business_date: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` in UTC of ``business_date`` in ``timezone`` (23, 24 or 25 hours)."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(business_date, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(business_date + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def read_ledger_side(
    connection: Connection, provider: str, business_date: dt.date, timezone: str,
    *, margin_s: int = DEFAULT_CUTOFF_MARGIN_S, references: Any = (),
) -> LedgerSide:
    """The provider's transfers created in the business day +- ``margin_s`` (one query), plus those
    among ``references`` (the report's references) created outside it (one query per 1,000 ids)."""
    if margin_s < 0:
        raise ValueError("margin_s must be >= 0")
    start, end = business_window(business_date, timezone)
    margin = dt.timedelta(seconds=margin_s)
    rows = connection.execute(_selected(provider).where(
        _transfers.c.created_at >= start - margin, _transfers.c.created_at < end + margin)).all()
    frame = ledger_frame(rows, start, end)
    wanted = pd.Series(references, dtype="string").dropna()
    wanted = sorted(wanted[~wanted.isin(frame["transfer_id"])].unique())
    extra: list[Any] = []
    for first in range(0, len(wanted), REFERENCE_BATCH):
        batch = [str(reference) for reference in wanted[first:first + REFERENCE_BATCH]]
        extra.extend(connection.execute(_selected(provider).where(_transfers.c.id.in_(batch))).all())
    if extra:
        frame = pd.concat([frame, ledger_frame(extra, start, end)], ignore_index=True)
    return LedgerSide(frame, start, end, margin_s)


def _selected(provider: str) -> Any:
    """The ledger-side columns of the provider's transfers that reached it (not settled here)."""
    return select(
        _transfers.c.id, _transfers.c.provider_tx_id, _transfers.c.player_id, _transfers.c.direction,
        _transfers.c.game_amount_minor, _transfers.c.game_currency, _transfers.c.status, _transfers.c.created_at,
    ).where(
        _transfers.c.provider == provider,
        or_(_transfers.c.provider_tx_id.is_(None), _transfers.c.provider_tx_id != SETTLED_LOCALLY),
    )


def ledger_frame(rows: Sequence[Any], start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The typed ledger-side frame of ``(id, provider_tx_id, player_id, direction, game amount,
    game currency, status, created_at)`` tuples; ``in_window`` marks ``start <= created_at < end``."""
    names = ["transfer_id", "provider_tx_id", "player_id", "direction", "amount_minor", "currency", "status",
             "created_at"]
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=names)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["in_window"] = (frame["created_at"] >= pd.Timestamp(start)) & (frame["created_at"] < pd.Timestamp(end))
    return frame.astype(LEDGER_DTYPES)
