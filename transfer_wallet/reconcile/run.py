"""The reconciliation of one provider's report for one business date, end to end.

``reconcile(db, provider_config, business_date, report, now=...)``: ingest ->
ledger side -> match -> classify -> control totals -> store (one write
transaction: the run row, its discrepancies, clearing). If storing fails nothing
of it is written, and a ``failed`` run row records why. Fetching the report from
the provider is the caller's business (``fetch_report``): no transaction is open
during a network call.

The day's ledger window is read (one read-only transaction, in a thread) while
the report is ingested: the database works while Python parses. The report's
references outside the window are then looked up (``ledger_side``). A day of
more than ``partition.ONE_FRAME_ROWS`` report rows is matched in partitions by
transfer id (``partition``: the same findings, a fraction of the memory), and
the day's frames are dropped before the findings are stored.

The profile's ``match_window_s`` bounds the player + direction + amount fallback
match; ``cutoff_margin_s`` is how far past each end of the business day the
ledger side is read (for TIMING_CUTOFF).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection

import numpy as np
import pandas as pd
import pyarrow as pa

from transfer_wallet.config import ProviderConfig
from transfer_wallet.db import Database
from transfer_wallet.errors import ValidationError
from transfer_wallet.reconcile import memory, partition, store
from transfer_wallet.reconcile.classify import classify
from transfer_wallet.reconcile.controls import control_breaks, control_totals, trailer_breaks
from transfer_wallet.reconcile.frame import ReportFile, isin
from transfer_wallet.reconcile.ingest import ingest_report
from transfer_wallet.reconcile import ledger_side
from transfer_wallet.reconcile.ledger_side import LedgerSide, Window
from transfer_wallet.reconcile.match import MatchResult, match


@dataclass(frozen=True)
class RunResult:
    """What a run found: its id, counts by type, open discrepancies of the day, and the frames."""

    run_id: int
    provider: str
    business_date: dt.date
    file_name: str
    file_sha256: str
    counts: dict[str, int]
    timings: dict[str, float]
    kinds: dict[str, int]
    open_count: int
    breaks: pd.DataFrame = field(repr=False)
    controls: pd.DataFrame = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The run as one JSON-able document."""
        return {"run_id": self.run_id, "provider": self.provider, "business_date": self.business_date.isoformat(),
                "file_name": self.file_name, "file_sha256": self.file_sha256, "counts": self.counts,
                "timings_s": self.timings, "discrepancies_by_type": self.kinds, "open": self.open_count}


def load_report(source: bytes | Path | ReportFile, profile: Any, *, name: str | None = None) -> ReportFile:
    """The report as a ``ReportFile`` read with the provider's profile (``ingest.ingest_report``).

    Unreadable files raise ``ValidationError`` (``ReportFileError``)."""
    if isinstance(source, ReportFile):
        return source
    if isinstance(source, Path):
        path = source
        try:
            name, source = name or path.name, path.read_bytes()
        except OSError as exc:
            raise ValidationError(f"cannot read report {path}: {exc.strerror}") from None
    return ingest_report(source, profile, name=name or "report.csv")


def profile_document(profile: Any) -> tuple[dict[str, Any], str]:
    """The profile as JSON-able dict and the SHA-256 of its canonical JSON."""
    is_instance = dataclasses.is_dataclass(profile) and not isinstance(profile, type)
    document = dataclasses.asdict(profile) if is_instance else dict(vars(profile))
    text = json.dumps(document, sort_keys=True, default=str)
    return document, hashlib.sha256(text.encode()).hexdigest()


def compare(report_file: ReportFile, ledger: LedgerSide, elsewhere: set[str], *, window_s: int,
            margin_s: int, own_day_pairs: Callable[[list[str]], Collection[str]] | None = None,
            partition_rows: int | None = None) -> tuple[MatchResult, pd.DataFrame, pd.DataFrame]:
    """Match, classify and check control totals: ``(match result, breaks, control totals)``.

    ``elsewhere``: transfer ids a neighbouring day's run already paired across the cut-off;
    ``own_day_pairs``: of the given other days' transfer ids, those their own day's report already had.
    A report of more than ``partition.ONE_FRAME_ROWS`` rows is matched in partitions of
    ``partition.PARTITION_ROWS`` (or of ``partition_rows``, when given, whatever the size), by key
    hash (``partition``: the same findings, and a result over the same whole-day frames).
    """
    rows = ledger.rows
    count = partition.count_for(len(report_file.rows), partition_rows)

    def sort(result: MatchResult, claimed: Collection[str], invalid: pd.DataFrame) -> pd.DataFrame:
        return classify(result, invalid, margin_s=margin_s, window=(ledger.start, ledger.end),
                        reconciled_elsewhere=elsewhere, paired_in_own_day=claimed)

    if count == 1:
        result = match(report_file.rows, rows, window_s=window_s)
        outside = result.l_position[~result.ledger["in_window"].to_numpy(dtype=bool)[result.l_position]]
        other_day = result.ledger["transfer_id"].take(outside).astype(str).tolist()
        breaks = sort(result, own_day_pairs(other_day) if own_day_pairs and other_day else (), report_file.invalid)
    else:  # the transfers a pair across days can hold: those outside the day (asked once, for every partition)
        candidates = partition.other_day_ids(rows)
        claimed = own_day_pairs(list(candidates)) if own_day_pairs and candidates else ()
        invalid = report_file.invalid
        done = partition.match_in_partitions(
            report_file.rows, rows, lambda found, last: sort(found, claimed, invalid if last else invalid.iloc[:0]),
            window_s=window_s, count=count)
        result, breaks = done.result, pd.concat([b for b in done.breaks if len(b)] or done.breaks[-1:],
                                                ignore_index=True)
    # The ledger rows the totals count (a mask, no copy): the day's own, and those paired here.
    responsible = (result.ledger["in_window"].to_numpy(dtype=bool)
                   & ~isin(result.ledger["transfer_id"], list(elsewhere)).to_numpy(dtype=bool))
    responsible[result.l_position] = True
    # The frames of ``result`` (the same rows as ``report_file.rows`` and ``rows``) with the codes
    # classification worked out for them.
    controls = control_totals(result.report, result.ledger, breaks, counted=responsible, codes=result.column_codes)
    extra = [control_breaks(controls), trailer_breaks(report_file.trailer, report_file.rows, report_file.data_rows,
                                                       len(report_file.invalid))]
    return result, pd.concat([breaks, *[e for e in extra if len(e)]], ignore_index=True), controls


def across_days(pairs: pd.DataFrame, breaks: pd.DataFrame) -> tuple[str, ...]:
    """Transfer ids paired with a row of this report although they belong to another business day
    (cut-off margin, or found by reference), except those applied a second time (duplicates)."""
    again = breaks.loc[breaks["kind"] == "DUPLICATE_AT_PROVIDER", "transfer_id"].dropna()
    other_day = pairs[~pairs["l_in_window"].astype(bool) & ~isin(pairs["l_transfer_id"], list(again))]
    return tuple(other_day["l_transfer_id"].astype(str))


def run_counts(report_file: ReportFile, rows: pd.DataFrame, result: MatchResult, across: tuple[str, ...],
               breaks: pd.DataFrame) -> dict[str, int]:
    """Row counts per stage for the run record."""
    return {"report_rows": report_file.data_rows, "valid_rows": len(report_file.rows),
            "invalid_rows": len(report_file.invalid), "ledger_rows": int(rows["in_window"].sum()),
            "ledger_margin_rows": int((~rows["in_window"]).sum()), "across_cutoff": len(across),
            **result.counts(), "breaks": len(breaks)}


def check_business_date(business_date: dt.date) -> dt.date:
    """``business_date`` if within the years 2000-2999 (like every instant: ``timeutil``), else ``ValidationError``."""
    if not 2000 <= business_date.year <= 2999:
        raise ValidationError(f"business date {business_date.isoformat()} is outside the years 2000-2999")
    return business_date


def run_record(provider_config: ProviderConfig, business_date: dt.date, report_file: ReportFile, ledger: LedgerSide,
               result: MatchResult, breaks: pd.DataFrame, timings: dict[str, float], *, now: dt.datetime,
               ) -> store.RunRecord:
    """What ``store`` records of the run (counts, the transfers paired across days and in the day)."""
    across = across_days(result.pairs, breaks)
    document, digest = profile_document(provider_config.report)
    paired = result.pairs.loc[result.pairs["l_in_window"].to_numpy(dtype=bool), "l_transfer_id"]
    return store.RunRecord(
        provider=provider_config.name, business_date=business_date, file_name=report_file.name,
        file_size_bytes=report_file.size_bytes, file_sha256=report_file.sha256, data_rows=report_file.data_rows,
        profile=document, profile_digest=digest, counts=run_counts(report_file, ledger.rows, result, across, breaks),
        timings=timings, across_cutoff=across, started_at=now,
        paired_in_day=pa.array(paired.astype("string").array, type=pa.large_string()),  # packed by store: no str per id
    )


#: The stages ``reconcile`` reports to its ``progress`` callback, in order (before each starts). Its
#: ``timings`` time them so; ``ledger_read`` is what the ledger read takes after ingest (it starts with it).
STAGES = ("ingest", "ledger_read", "match_classify", "persist")


def reconcile(db: Database, provider_config: ProviderConfig, business_date: dt.date,
              report: bytes | Path | ReportFile, *, now: dt.datetime, name: str | None = None,
              progress: Callable[[str], None] | None = None) -> RunResult:
    """Reconcile ``report`` against the ledger for (provider, business date); see the module docstring.

    ``progress``, if given, is called with each of ``STAGES`` as it starts (a progress bar)."""
    check_business_date(business_date)
    step = progress or (lambda stage: None)
    profile = provider_config.report
    window_s = profile.match_window_s
    margin_s = profile.cutoff_margin_s
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def read_window(connection: Any) -> tuple[Window, set[str]]:
        """The day's ledger rows and the transfers paired across the cut-off by the neighbouring days."""
        window = ledger_side.read_window(connection, provider_config.name, business_date, profile.timezone,
                                         margin_s=margin_s)
        return window, store.reconciled_across_cutoff(connection, provider_config.name, business_date)

    step("ingest")
    with ThreadPoolExecutor(1, thread_name_prefix="tw-ledger-window") as pool:  # the query runs while the report is read
        reading = pool.submit(db.transaction, read_window, readonly=True)
        report_file = load_report(report, profile, name=name)  # on an error, the read is waited for, then dropped
        memory.release()  # what the ingest freed (the file's bytes, its cells): the read goes on beside
        timings["ingest"], clock = time.perf_counter() - clock, time.perf_counter()
        step("ledger_read")
        window, elsewhere = reading.result()
    references = report_file.rows["reference"]
    found = db.transaction(lambda c: ledger_side.read_references(c, provider_config.name, window, references),
                           readonly=True)
    ledger = ledger_side.combine(window, found)
    del references, window, found
    memory.release()
    timings["ledger_read"], clock = time.perf_counter() - clock, time.perf_counter()

    step("match_classify")
    def claimed(transfer_ids: list[str]) -> Collection[str]:
        """Other days' transfers paired here that their own day's report already had."""
        return db.transaction(lambda c: store.paired_in_own_day(c, provider_config.name, business_date, transfer_ids),
                              readonly=True)

    result, breaks, controls = compare(report_file, ledger, elsewhere, window_s=window_s, margin_s=margin_s,
                                       own_day_pairs=claimed)
    timings["match_classify"], clock = time.perf_counter() - clock, time.perf_counter()
    record = run_record(provider_config, business_date, report_file, ledger, result, breaks, timings, now=now)
    file_name, file_sha256 = report_file.name, report_file.sha256
    del report_file, ledger, result  # the day's frames: not needed to store what was found
    memory.release()
    step("persist")
    try:
        run_id, open_count, duplicate_file = db.transaction(lambda c: store.persist(c, record, breaks, now=now))
    except Exception as exc:
        db.transaction(lambda c: store.insert_run(c, record, outcome="failed", now=now, error=str(exc)[:1000]))
        raise
    timings["persist"] = time.perf_counter() - clock
    kinds = Counter(breaks["kind"].astype(str))
    if duplicate_file:
        kinds["DUPLICATE_FILE"] += 1
    return RunResult(run_id, provider_config.name, business_date, file_name, file_sha256, record.counts,
                     timings, dict(sorted(kinds.items())), open_count, breaks, controls)


def fetch_report(provider_config: ProviderConfig, business_date: dt.date) -> tuple[bytes, str]:
    """The provider's signed daily report for ``business_date`` over HTTP, with a file name for the run.

    Called before ``reconcile`` so that no database transaction is open during the network call.
    """
    from transfer_wallet.providers.http import HttpProvider

    check_business_date(business_date)
    with HttpProvider(provider_config) as client:
        body = client.transfer_report(business_date)
    return body, f"{provider_config.name}-{business_date.isoformat()}.csv"
