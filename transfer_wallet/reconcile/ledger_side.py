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

The queries are SQL text run on the driver cursor under the caller's SQLAlchemy
connection (``transfer_wallet.dbapi``: in its transaction, no ORM row objects),
and the frame is built column by column: a day can hold a million transfers. The
rows are fetched ``FETCH_BATCH`` at a time (``dbapi.batches``: streamed in chunks on
PostgreSQL) and each batch is split into per-column lists at once
(``operator.itemgetter``, in C), so a million row tuples are never all alive
together: ``zip(*rows)`` over them cost more than the query (the garbage collector
walked every tuple again and again). ``amount_minor`` goes from the
driver's ints straight into ``Int64`` (never through float, which would round an
amount above 2**53 as soon as one amount is NA).

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
from operator import itemgetter
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection

from transfer_wallet.dbapi import SQLITE_TIME_FORMAT, batches, bound_time, placeholders, run_on
from transfer_wallet.models import Transfer, table_of
from transfer_wallet.reconcile import memory
from transfer_wallet.sessions.state import SETTLED_LOCALLY

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
#: The selected columns, in ``SELECTED_SQL`` order (all but ``in_window``).
_READ_COLUMNS = tuple(name for name in LEDGER_DTYPES if name != "in_window")
#: Per selected column, what takes its value out of a row tuple.
_TAKE = tuple(map(itemgetter, range(len(_READ_COLUMNS))))
#: Ledger statuses that mean "the provider applied it" / "it did not apply" / "not known yet".
APPLIED, NOT_APPLIED, UNSETTLED = "completed", "refused", ("pending", "in_doubt")
DEFAULT_CUTOFF_MARGIN_S = 3600
#: Ids per ``IN (...)`` of the by-reference lookup (well under SQLite's bound-parameter limit).
REFERENCE_BATCH = 1000
#: Rows fetched at a time (``dbapi.batches``) and split into columns (a few MB of row tuples at a time).
FETCH_BATCH = 50_000

#: The ledger-side columns (``ledger_frame`` order) of the provider's (first ``?``) transfers that
#: reached it: not settled here (second ``?``: ``SETTLED_LOCALLY``). ``?`` placeholders (``dbapi.execute``);
#: ``{created_at}`` is ``CREATED_AT_UTC`` of the backend.
SELECTED_SQL = (
    "SELECT id, provider_tx_id, player_id, direction, game_amount_minor, game_currency, status, {created_at}"
    f" FROM {table_of(Transfer).name}"
    " WHERE provider = ? AND (provider_tx_id IS NULL OR provider_tx_id <> ?)"
)
#: ... created in ``[start, end)`` (the business day widened by the margins; ``ix_transfers_provider_created_at``).
IN_WINDOW_SQL = " AND created_at >= ? AND created_at < ?"
#: ``created_at`` as naive UTC: SQLite stores it so (text); PostgreSQL's timestamptz is converted in the query,
#: because pandas reads naive datetimes about five times faster than psycopg's zone-aware ones.
CREATED_AT_UTC = {"sqlite": "created_at", "postgresql": "created_at AT TIME ZONE 'UTC'"}


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
    among ``references`` (the report's references) created outside it (one query per 1,000 ids).

    Read in the caller's transaction, on its connection's driver cursor. The same as
    ``read_window``, ``read_references`` and ``combine`` (which ``reconcile`` runs apart: the
    window while the report is read)."""
    window = read_window(connection, provider, business_date, timezone, margin_s=margin_s)
    return combine(window, read_references(connection, provider, window, references))


@dataclass(frozen=True, slots=True)
class Window:
    """The transfers of the business day +- the margins, as read (``Columns``), and the day's UTC window."""

    columns: Columns
    start: dt.datetime
    end: dt.datetime
    margin_s: int


def read_window(connection: Connection, provider: str, business_date: dt.date, timezone: str,
                *, margin_s: int = DEFAULT_CUTOFF_MARGIN_S) -> Window:
    """The provider's transfers created in the business day +- ``margin_s``: one query."""
    if margin_s < 0:
        raise ValueError("margin_s must be >= 0")
    start, end = business_window(business_date, timezone)
    margin = dt.timedelta(seconds=margin_s)
    selected = SELECTED_SQL.format(created_at=CREATED_AT_UTC[connection.dialect.name])

    def read(cursor: Any) -> Columns:
        window = (bound_time(cursor, start - margin), bound_time(cursor, end + margin))
        columns = Columns()
        _extend(columns, cursor, selected + IN_WINDOW_SQL, (provider, SETTLED_LOCALLY, *window))
        return columns

    return Window(run_on(connection, read), start, end, margin_s)


def read_references(connection: Connection, provider: str, window: Window, references: Any = ()) -> Columns:
    """The provider's transfers among ``references`` that ``window`` does not hold (created outside it):
    one query per 1,000 ids. ``window`` is left as it is (the caller's transaction may run this again)."""
    selected = SELECTED_SQL.format(created_at=CREATED_AT_UTC[connection.dialect.name])
    wanted = _outside(references, window.columns.transfer_ids())
    found = Columns()
    if wanted:
        run_on(connection, lambda cursor: _by_reference(cursor, selected, provider, wanted, found))
    return found


def combine(window: Window, found: Columns) -> LedgerSide:
    """The ledger side of ``window``'s transfers and those ``found`` by reference (both are consumed)."""
    window.columns.extend(found)
    return LedgerSide(window.columns.frame(window.start, window.end), window.start, window.end, window.margin_s)


def _outside(references: Any, known: pa.Array) -> list[str]:
    """The distinct ``references`` (NA dropped, sorted) that are not among the ``known`` transfer ids.

    One Arrow hash lookup of every reference in ``known``, then the distinct values of the few left:
    taking the distinct references first built a hash table of every reference of the day beside the
    one of ``known`` (at 5 million rows a side, 1 GB and twice the time)."""
    given = pa.array(pd.Series(references, dtype="string").array, type=pa.large_string())
    given = given.combine_chunks() if isinstance(given, pa.ChunkedArray) else given
    if len(known):
        given = given.filter(pc.invert(pc.is_in(given, value_set=known, skip_nulls=True)))
    return sorted(pc.unique(given.drop_null()).to_pylist())


def _by_reference(cursor: Any, selected: str, provider: str, wanted: list[str], columns: Columns) -> None:
    """Extend ``columns`` with the provider's transfers (``selected``: ``SELECTED_SQL``) whose id is in
    ``wanted``, ``REFERENCE_BATCH`` ids a query."""
    for first in range(0, len(wanted), REFERENCE_BATCH):
        batch = wanted[first:first + REFERENCE_BATCH]
        sql = f"{selected} AND id IN ({placeholders(len(batch))})"
        _extend(columns, cursor, sql, (provider, SETTLED_LOCALLY, *batch))


def _extend(columns: Columns, cursor: Any, sql: str, params: tuple[Any, ...]) -> None:
    """Extend ``columns`` with the rows of ``sql`` on ``cursor``, ``FETCH_BATCH`` rows at a time."""
    for rows in batches(cursor, sql, params, FETCH_BATCH):
        columns.add(rows)


class Columns:
    """The ledger-side columns, one typed chunk per fetched batch: each batch of row tuples becomes
    Arrow text, Arrow int64 and datetime64 arrays at once, so that the Python objects of one batch
    only are alive (a million rows as Python values were 600 bytes a row more at the peak)."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[Any]] = {name: [] for name in _READ_COLUMNS}

    def add(self, rows: Sequence[Any]) -> None:
        """Append the values of ``rows`` (tuples in ``_READ_COLUMNS`` order)."""
        if not rows:
            return
        for name, take in zip(_READ_COLUMNS, _TAKE):
            values = list(map(take, rows))
            if name == "created_at":
                self.chunks[name].append(_utc_times(values).tz_convert(None).to_numpy())  # naive UTC
            else:  # ints go to Arrow int64 as they are (exact; None is null); text as pandas keeps it (no cast later)
                self.chunks[name].append(pa.array(values, type=pa.int64() if name == "amount_minor" else pa.large_string()))

    def extend(self, other: Columns) -> None:
        """Append the chunks of ``other``."""
        for name, chunks in other.chunks.items():
            self.chunks[name].extend(chunks)

    def transfer_ids(self) -> pa.Array:
        """The transfer ids read so far, as one Arrow array."""
        chunks = self.chunks["transfer_id"]
        return pa.concat_arrays(chunks) if chunks else pa.array([], type=pa.large_string())

    def frame(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """The typed frame (``LEDGER_DTYPES``); the chunks are released as each column is built."""
        data: dict[str, Any] = {}
        for name in _READ_COLUMNS:
            chunks, self.chunks[name] = self.chunks[name], []
            data[name] = _column(name, chunks)
            del chunks
            memory.release()  # the chunks (else kept by the allocator: the next column would add to them)
        created_at = data["created_at"]
        data["in_window"] = (created_at >= pd.Timestamp(start)) & (created_at < pd.Timestamp(end))
        return pd.DataFrame(data, columns=list(LEDGER_DTYPES))


def _column(name: str, chunks: list[Any]) -> Any:
    """One column of the frame from its chunks (``Columns.add``)."""
    if name == "created_at":
        joined = np.concatenate(chunks) if chunks else np.array([], dtype="datetime64[ns]")
        return pd.DatetimeIndex(joined).tz_localize("UTC").array
    if name == "amount_minor":
        array = pa.concat_arrays(chunks) if chunks else pa.array([], type=pa.int64())
        mask = np.asarray(array.is_null(), dtype=bool)
        values = np.asarray(array.fill_null(0), dtype="int64")
        return pd.arrays.IntegerArray(values, mask)
    array = pa.concat_arrays(chunks) if chunks else pa.array([], type=pa.large_string())
    return pd.array(array, dtype=LEDGER_DTYPES[name])


def ledger_frame(rows: Sequence[Any], start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The typed ledger-side frame of ``(id, provider_tx_id, player_id, direction, game amount,
    game currency, status, created_at)`` tuples; ``in_window`` marks ``start <= created_at < end``.

    ``created_at`` is an aware datetime, or naive UTC (a datetime, or SQLite's text); amounts are ints or None,
    kept exact."""
    columns = Columns()
    columns.add(list(rows))
    return columns.frame(start, end)


def _utc_times(values: list[Any]) -> pd.DatetimeIndex:
    """``values`` (aware datetimes, naive UTC datetimes, or SQLite's naive UTC text) as datetime64[ns, UTC]."""
    if values and isinstance(values[0], str):
        try:
            times = pd.to_datetime(values, format=SQLITE_TIME_FORMAT, utc=True)
        except ValueError:  # written by something other than SQLAlchemy: any ISO 8601 text
            times = pd.to_datetime(values, format="ISO8601", utc=True)
    else:
        times = pd.to_datetime(values, utc=True)
    return pd.DatetimeIndex(times).as_unit("ns")
