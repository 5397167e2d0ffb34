"""Persisting a reconciliation: the run row and its discrepancies, in the caller's one transaction.

- A run per (provider, business date) is one ``reconciliation_runs`` row (a re-run adds a row).
- Its breaks go through ``discrepancies.record_many`` (``record``'s upsert by fingerprint,
  new ones inserted in batches: a re-run of the same day bumps times seen and keeps what
  finance wrote) and
  ``discrepancies.clear_absent`` (what this run no longer sees closes as cleared).
- The same file (SHA-256, with data rows) already reconciled for another business
  date of the provider is a ``DUPLICATE_FILE`` discrepancy (key: the hash).
- A transfer this run paired with a report row across days (in a cut-off margin, or
  found by reference: applied late) closes the other day's absence breaks for it
  (``ABSENCE_KINDS``, via ``clear_fingerprints``: clear_absent semantics restricted
  to chosen fingerprints), and is remembered in the run's ``across_cutoff`` so that
  its own day's (re-)run does not report it again. A pair that is a second
  application (``DUPLICATE_AT_PROVIDER``) is not remembered: it excuses nothing.
- The run also remembers the transfers of its own day it paired with a row of its own
  report (``paired``): another day's report pairing one of them again claims the same money
  a second time (``paired_in_own_day``). Both live in the run's ``across_cutoff`` JSON:
  ``{"across": [...], "paired_z": "..."}``, ``paired_z`` being the sorted ids joined by newlines,
  zlib-compressed, base64 (``pack_ids``: a day of millions of pairs as a few MB, built in Arrow
  without a Python string per id); an older run's ``"paired": [...]`` list, or its plain list
  (its ``across``), is read too.
- A PENDING_IN_LEDGER break with a report row (a pair: the provider applied it while our
  side was in doubt) is not an absence: a pair on another day does not clear it; the
  re-run of its own day looks at it again once our side settled.
- A re-run that no longer pairs a transfer the day's previous run paired across days
  reopens the other days' absence breaks that previous run had cleared (``reopen_absence``),
  unless a third day's run still pairs it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib
from dataclasses import dataclass
from typing import Any, Collection

import pyarrow as pa
import pyarrow.compute as pc

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection

from transfer_wallet import discrepancies
from transfer_wallet.models import OPEN_DISCREPANCY_STATUSES, Discrepancy, ReconciliationRun, table_of
from transfer_wallet.reconcile.classify import SOURCE, fingerprint, findings

#: How many later business days' runs can have paired a transfer of this day (applied that late).
LOOKAHEAD_DAYS = 31
#: Breaks that only say "this day's report lacks the transfer": moot once another day pairs it.
ABSENCE_KINDS = ("TIMING_CUTOFF", "MISSING_AT_PROVIDER", "PENDING_IN_LEDGER")

_runs = table_of(ReconciliationRun)
_discrepancies = table_of(Discrepancy)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What a run compared and how it went, before it is stored."""

    provider: str
    business_date: dt.date
    file_name: str
    file_size_bytes: int
    file_sha256: str
    data_rows: int
    profile: dict[str, Any]
    profile_digest: str
    counts: dict[str, int]
    timings: dict[str, float]
    across_cutoff: tuple[str, ...]
    started_at: dt.datetime
    #: The day's transfers paired with a row of its report: any ids, or an Arrow string array (``pack_ids``).
    paired_in_day: Collection[str] | pa.Array = ()


def _lists(text: str | None) -> tuple[list[str], list[str]]:
    """``(across, paired)`` of a run's ``across_cutoff`` JSON (an older run's plain list is ``across``)."""
    if not text:
        return [], []
    value = json.loads(text)
    if isinstance(value, list):
        return [str(v) for v in value], []
    paired = unpack_ids(value["paired_z"]) if "paired_z" in value else [str(v) for v in value.get("paired", [])]
    return [str(v) for v in value.get("across", [])], paired


def pack_ids(ids: Collection[str] | pa.Array) -> str:
    """``ids`` (no NA, none holding a newline: our transfer ids), sorted, joined by newlines, compressed
    and base64-encoded: the run's ``paired_z``. Sorted and joined by Arrow (one buffer, no Python string
    per id); sorted ids share their prefixes, which zlib stores once."""
    array = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids), type=pa.large_string())
    array = array.cast(pa.large_string())
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    ordered = pc.take(array, pc.array_sort_indices(array))
    joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array([0, len(ordered)], type=pa.int64()), ordered),
                            pa.scalar("\n", type=pa.large_string()))[0]
    return base64.b64encode(zlib.compress(joined.as_buffer() or b"", 1)).decode("ascii")


def unpack_ids(text: str) -> list[str]:
    """The ids ``pack_ids`` packed, in order."""
    joined = zlib.decompress(base64.b64decode(text)).decode("utf-8")
    return joined.split("\n") if joined else []


def _latest_runs(connection: Connection, provider: str, business_date: dt.date) -> dict[dt.date, str | None]:
    """``across_cutoff`` JSON of the latest succeeded run of every day that can pair a transfer of
    ``business_date`` or of whose transfers ``business_date`` can pair (the day before, the days after)."""
    first, last = business_date - dt.timedelta(days=LOOKAHEAD_DAYS), business_date + dt.timedelta(days=LOOKAHEAD_DAYS)
    rows = connection.execute(
        select(_runs.c.business_date, _runs.c.across_cutoff).where(
            _runs.c.provider == provider, _runs.c.business_date >= first, _runs.c.business_date <= last,
            _runs.c.business_date != business_date, _runs.c.outcome == "succeeded").order_by(_runs.c.id)
    ).all()
    return {row.business_date: row.across_cutoff for row in rows}  # ordered by id: the last one wins


def reconciled_across_cutoff(connection: Connection, provider: str, business_date: dt.date) -> set[str]:
    """Transfer ids that the latest succeeded run of another day paired across days: the day
    before (its end margin) and the ``LOOKAHEAD_DAYS`` after (a margin, or a transfer applied late)."""
    found: set[str] = set()
    for day, text in _latest_runs(connection, provider, business_date).items():
        if day >= business_date - dt.timedelta(days=1):
            found.update(_lists(text)[0])
    return found


def paired_in_own_day(connection: Connection, provider: str, business_date: dt.date,
                      transfer_ids: Collection[str]) -> set[str]:
    """Those of ``transfer_ids`` (other days' transfers this run paired) that the latest run of
    another day paired with a row of its own report: its report already claimed them."""
    wanted = set(transfer_ids)
    found: set[str] = set()
    if wanted:
        for text in _latest_runs(connection, provider, business_date).values():
            found.update(wanted.intersection(_lists(text)[1]))
    return found


def duplicate_file_dates(connection: Connection, record: RunRecord) -> list[dt.date]:
    """Other business dates of this provider already reconciled from a file with the same hash."""
    rows = connection.execute(
        select(_runs.c.business_date).distinct().where(
            _runs.c.provider == record.provider, _runs.c.file_sha256 == record.file_sha256,
            _runs.c.business_date != record.business_date, _runs.c.outcome == "succeeded")
    ).all()
    return sorted(r.business_date for r in rows)


def insert_run(connection: Connection, record: RunRecord, *, outcome: str, now: dt.datetime,
               error: str | None = None) -> int:
    """Insert the run row; returns its id."""
    return int(connection.execute(_runs.insert().values(
        provider=record.provider, business_date=record.business_date, file_name=record.file_name[:255],
        file_size_bytes=record.file_size_bytes, file_sha256=record.file_sha256,
        profile_digest=record.profile_digest, profile=json.dumps(record.profile, sort_keys=True, default=str),
        counts=json.dumps(record.counts, sort_keys=True), timings=json.dumps(record.timings, sort_keys=True),
        across_cutoff=json.dumps({"across": sorted(record.across_cutoff), "paired_z": pack_ids(record.paired_in_day)}),
        outcome=outcome, error=error, open_count=0,
        started_at=record.started_at, finished_at=now,
    ).returning(_runs.c.id)).scalar_one())


def persist(connection: Connection, record: RunRecord, breaks: Any, *, now: dt.datetime) -> tuple[int, int, bool]:
    """Store the run and its breaks (a breaks frame); returns ``(run id, open discrepancies of the day,
    whether the file was flagged as a DUPLICATE_FILE)``."""
    previous = _previous_across(connection, record)
    run_id = insert_run(connection, record, outcome="succeeded", now=now)
    found = findings(breaks, provider=record.provider, business_date=record.business_date, run_id=run_id)
    discrepancies.record_many(connection, found, now=now)
    seen = {finding.identity() for finding in found}
    other_dates = duplicate_file_dates(connection, record) if record.data_rows else []
    if other_dates:
        seen.add(_record_duplicate_file(connection, record, other_dates, run_id, now))
    discrepancies.clear_absent(connection, source=SOURCE, provider=record.provider,
                               business_date=record.business_date, seen=seen, now=now)
    clear_timing_breaks(connection, record.provider, record.across_cutoff, now=now, other_than=record.business_date)
    reopen_absence(connection, record, previous - set(record.across_cutoff), run_id=run_id, now=now)
    open_count = connection.execute(select(func.count()).select_from(_discrepancies).where(
        _discrepancies.c.source == SOURCE, _discrepancies.c.provider == record.provider,
        _discrepancies.c.business_date == record.business_date,
        _discrepancies.c.status.in_(OPEN_DISCREPANCY_STATUSES))).scalar_one()
    connection.execute(update(_runs).where(_runs.c.id == run_id).values(open_count=open_count))
    return run_id, int(open_count), bool(other_dates)


def _record_duplicate_file(connection: Connection, record: RunRecord, other_dates: list[dt.date], run_id: int,
                           now: dt.datetime) -> str:
    dates = ", ".join(d.isoformat() for d in other_dates)
    finding = discrepancies.Finding(
        kind="DUPLICATE_FILE", source=SOURCE, provider=record.provider, business_date=record.business_date,
        run_id=run_id, fingerprint=fingerprint(record.provider, record.business_date, "DUPLICATE_FILE",
                                               record.file_sha256),
        detail=f"the same file (sha256 {record.file_sha256[:12]}..., {record.file_name}) was already "
               f"reconciled for {dates}",
        fields={"file_sha256": {"provider": record.file_sha256, "ledger": None}, "business_date":
                {"provider": [d.isoformat() for d in other_dates], "ledger": record.business_date.isoformat()}},
    )
    discrepancies.record(connection, finding, now=now)
    return finding.identity()


def clear_timing_breaks(connection: Connection, provider: str, transfer_ids: Collection[str], *,
                        now: dt.datetime, other_than: dt.date | None = None) -> int:
    """Close as cleared the open absence breaks (``ABSENCE_KINDS``) of ``transfer_ids`` on days other
    than ``other_than``: a run paired them across days, so their own day's report need not have them."""
    if not transfer_ids:
        return 0
    ids = sorted(transfer_ids)
    rows: list[Any] = []
    for first in range(0, len(ids), 1000):  # bounded IN lists (SQLite's bound-parameter limit)
        rows += connection.execute(select(_discrepancies.c.fingerprint, _discrepancies.c.business_date).where(
            _discrepancies.c.source == SOURCE, _discrepancies.c.provider == provider,
            _absence(), _discrepancies.c.transfer_id.in_(ids[first:first + 1000]),
            _discrepancies.c.status.in_(OPEN_DISCREPANCY_STATUSES))).all()
    by_date: dict[dt.date, set[str]] = {}
    for row in rows:
        if row.business_date != other_than:
            by_date.setdefault(row.business_date, set()).add(row.fingerprint)
    return sum(clear_fingerprints(connection, provider, day, targets, now=now) for day, targets in by_date.items())


def clear_fingerprints(connection: Connection, provider: str, business_date: dt.date, targets: set[str], *,
                       now: dt.datetime) -> int:
    """Clear exactly ``targets`` among the open reconcile discrepancies of (provider, business date),
    through ``clear_absent`` (same events and status), leaving every other one as it is."""
    return discrepancies.clear_absent(connection, source=SOURCE, provider=provider, business_date=business_date,
                                      seen=(), only=targets, now=now)


def _absence() -> Any:
    """The absence breaks: TIMING_CUTOFF, MISSING_AT_PROVIDER, and a PENDING_IN_LEDGER without a report row."""
    kind = _discrepancies.c.kind
    return or_(kind.in_([k for k in ABSENCE_KINDS if k != "PENDING_IN_LEDGER"]),
               and_(kind == "PENDING_IN_LEDGER", _discrepancies.c.actual_minor.is_(None)))


def _previous_across(connection: Connection, record: RunRecord) -> set[str]:
    """What the latest succeeded run of the same (provider, day) paired across days."""
    text = connection.execute(select(_runs.c.across_cutoff).where(
        _runs.c.provider == record.provider, _runs.c.business_date == record.business_date,
        _runs.c.outcome == "succeeded").order_by(_runs.c.id.desc()).limit(1)).scalar()
    return set(_lists(text)[0])


def reopen_absence(connection: Connection, record: RunRecord, dropped: Collection[str], *, run_id: int,
                   now: dt.datetime) -> int:
    """Reopen the cleared absence breaks of other days for ``dropped`` (transfers the day's previous run
    paired across days and this re-run does not), unless another day's latest run still pairs them."""
    if not dropped:
        return 0
    rows: list[Any] = []
    ids = sorted(dropped)
    for first in range(0, len(ids), 1000):
        rows += connection.execute(select(_discrepancies).where(
            _discrepancies.c.source == SOURCE, _discrepancies.c.provider == record.provider, _absence(),
            _discrepancies.c.transfer_id.in_(ids[first:first + 1000]), _discrepancies.c.status == "cleared",
            _discrepancies.c.business_date != record.business_date)).all()
    excused: dict[dt.date, set[str]] = {}
    reopened: list[discrepancies.Finding] = []
    for row in rows:  # the rows to reopen (a few), then one record_many: batched statements
        if row.business_date not in excused:
            excused[row.business_date] = reconciled_across_cutoff(connection, record.provider, row.business_date)
        if row.transfer_id in excused[row.business_date]:
            continue
        reopened.append(discrepancies.Finding(
            kind=row.kind, detail=row.detail, source=SOURCE, fingerprint=row.fingerprint, provider=row.provider,
            business_date=row.business_date, run_id=run_id, transfer_id=row.transfer_id,
            provider_tx_id=row.provider_tx_id, player_id=row.player_id, currency=row.currency,
            expected_minor=row.expected_minor, actual_minor=row.actual_minor, difference_minor=row.difference_minor,
            fields=json.loads(row.fields) if row.fields else None))
    discrepancies.record_many(connection, reopened, now=now)
    return len(reopened)
