"""Matching and classifying a large day in partitions by transfer id, with the findings of one frame.

One ``match`` over a whole day holds every report and ledger row several times over (the
prefixed copies, the merges, the pairs). Here the day is cut by our transfer id (``_spread``:
a number from the id's bytes, the same on both sides):

1. a **partition** holds the ledger rows whose transfer id falls into it and the report rows
   whose reference does; there only the pairs by reference are kept (and classified at
   once; the partition's other frames are then dropped);
2. the **residual** holds what no partition paired by reference, plus the report rows set
   aside at the start; it goes through the whole ``match`` (duplicates, reference, provider
   tx id, player + direction + amount window) and ``classify`` as one frame. It is small:
   the rows without a reference and the breaks (a few percent of a day).

Why the findings are those of one frame: a report row whose reference and provider tx id
are each unique in the file is no duplicate, and its pair by reference is the ledger row
with that id (ids are unique), which lies in the same partition. Every row whose tx id or
reference repeats goes to the residual with every other row of its key, so duplicates are
numbered among all of them. So do the rows that reference a transfer holding one of those
repeated tx ids: the duplicate kept is the one under a tx id our ledger holds, and that
ledger row must be in the residual to be seen. The later stages (tx id, window) run on
what the reference stage left, which is exactly the residual. Control totals are summed
over the whole frames once, after (``run.compare``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from transfer_wallet.reconcile import memory
from transfer_wallet.reconcile.frame import isin
from transfer_wallet.reconcile.codes import StringBytes
from transfer_wallet.reconcile.match import METHODS, MatchResult, match

#: A day of at most this many report rows is matched as one frame (at 1M rows one frame peaks
#: near 0.9 GB and is several times faster than partitions); a larger day is cut into partitions.
ONE_FRAME_ROWS = 1_500_000
#: Report rows per partition once a day is partitioned (smaller partitions: a lower peak).
PARTITION_ROWS = 400_000


@dataclass(frozen=True, slots=True)
class Partitioned:
    """The outcome: a ``MatchResult`` over the whole day's frames (every pair's positions in them;
    the residual's duplicates / report-only / ledger-only rows) and the breaks of all of them."""

    result: MatchResult
    breaks: list[pd.DataFrame]


#: Bytes of each end of an id that its partition depends on (with its length).
_END_BYTES = 8


def _spread(values: pd.Series, count: int, hashes: np.ndarray | None = None) -> np.ndarray:
    """A partition number in ``[0, count)`` for each value, the same for equal values (NA: 0);
    ``hashes``: the values' ``_hashes``, if already at hand."""
    return ((_hashes(values) if hashes is None else hashes) % np.uint64(count)).astype(np.int64)


def _hashes(values: pd.Series) -> np.ndarray:
    """A 64-bit hash of each value, the same for equal values (NA and "": 0).

    From the value's length and its first and last ``_END_BYTES`` bytes, read straight from the
    Arrow buffers (a few numpy gathers: hashing or factorising a million ids costs far more). Ids
    that share both ends share a hash; which ones never changes a finding."""
    array = pa.array(values.array, type=pa.large_string())
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    text = StringBytes(array)
    data = text.data if len(text.data) else np.zeros(1, np.uint8)
    start, length = text.offsets[:-1], text.stored
    mixed = length.astype(np.uint64)
    last = max(len(data) - 1, 0)
    for step in range(_END_BYTES):
        for at in (start + step, start + length - 1 - step):
            byte = np.where(step < length, data[np.clip(at, 0, last)], 0).astype(np.uint64)
            mixed = (mixed ^ byte) * np.uint64(0x100000001B3)  # FNV-1a, wrapping
    mixed ^= mixed >> np.uint64(29)
    return mixed


def _repeats(values: pd.Series, hashes: np.ndarray | None = None) -> np.ndarray:
    """Which rows hold a value (not NA) that occurs twice or more.

    The rows whose ``_hashes`` repeat (one sort of 64-bit numbers) are the candidates, and only
    they are compared as text: pandas' ``duplicated`` over a whole day's ids built a hash table of
    them all (at 5 million rows, over a GB: the run's peak). ``hashes``: as for ``_spread``."""
    present = values.notna().to_numpy(dtype=bool)
    hashes = _hashes(values) if hashes is None else hashes
    ordered = np.sort(hashes[present])
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    found = np.zeros(len(values), dtype=bool)
    if len(repeated):
        at = np.minimum(np.searchsorted(repeated, hashes), len(repeated) - 1)
        maybe = np.flatnonzero(present & (repeated[at] == hashes))
        found[maybe] = values.iloc[maybe].duplicated(keep=False).to_numpy(dtype=bool)
    return found


def assign(report: pd.DataFrame, ledger: pd.DataFrame, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The partition of every report row (-1: set aside for the residual, see the module docstring)
    and of every ledger row, by our transfer id (the report's reference)."""
    reference = report["reference"]
    by_reference = _hashes(reference)  # for the repeats and the partitions (each hashing is a few seconds at 5M)
    repeated = _repeats(report["provider_tx_id"]) | _repeats(reference, by_reference)
    aside = repeated | reference.isna().to_numpy(dtype=bool)
    tx = report["provider_tx_id"][repeated].dropna()
    if len(tx):  # the transfers holding a repeated tx id: the rows referencing them too
        holders = ledger["transfer_id"][isin(ledger["provider_tx_id"], tx).to_numpy(dtype=bool)]
        aside |= isin(reference, holders).to_numpy(dtype=bool)
    return np.where(aside, -1, _spread(reference, count, by_reference)), _spread(ledger["transfer_id"], count)


def partitions(report: pd.DataFrame, ledger: pd.DataFrame, count: int,
               ) -> tuple[np.ndarray, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """``(positions of the report rows set aside, (report positions, ledger positions) of each partition)``,
    positions ascending (file and ledger order)."""
    report_part, ledger_part = assign(report, ledger, count)
    report_order, ledger_order = np.argsort(report_part, kind="stable"), np.argsort(ledger_part, kind="stable")
    report_bounds = np.searchsorted(report_part[report_order], np.arange(-1, count + 1))
    ledger_bounds = np.searchsorted(ledger_part[ledger_order], np.arange(count + 1))

    def each() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for number in range(count):
            yield (report_order[report_bounds[number + 1]:report_bounds[number + 2]],
                   ledger_order[ledger_bounds[number]:ledger_bounds[number + 1]])

    return report_order[:report_bounds[1]], each()


Classifier = Callable[[MatchResult, bool], pd.DataFrame]
#: Pairs as ``(report positions, ledger positions, method codes)`` in the whole day's frames.
Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]


def match_in_partitions(report: pd.DataFrame, ledger: pd.DataFrame, classify: Classifier, *, window_s: int,
                        count: int) -> Partitioned:
    """Match and classify ``report`` against ``ledger`` in ``count`` partitions and a residual.

    ``classify(result, last)`` gives the breaks of a ``MatchResult`` (``last``: the residual's,
    the one call that should add what belongs to no pair, like the unreadable rows). A partition's
    result holds its own rows only; its pairs' positions are mapped back into the whole frames."""
    report, ledger = report.reset_index(drop=True), ledger.reset_index(drop=True)
    aside, each = partitions(report, ledger, count)
    found: list[Pairs] = []
    breaks: list[pd.DataFrame] = []
    left_report, left_ledger = [aside], []
    for rows, positions in each:
        part = _by_reference(match(report.take(rows), ledger.take(positions), window_s=window_s))
        breaks.append(classify(part, False))
        found.append((rows[part.p_position], positions[part.l_position], part.method))
        left_report.append(np.delete(rows, part.p_position))
        left_ledger.append(np.delete(positions, part.l_position))
        del part
        memory.release()  # the partition's frames, given back before the next one is built
    rows, positions = np.sort(np.concatenate(left_report)), np.sort(np.concatenate(left_ledger))
    rest = match(report.take(rows), ledger.take(positions), window_s=window_s)
    breaks.append(classify(rest, True))
    found.append((rows[rest.p_position], positions[rest.l_position], rest.method))
    p_position, l_position, method = (np.concatenate(arrays) for arrays in zip(*found))
    order = np.argsort(l_position, kind="stable")
    duplicates = rest.duplicates.set_axis(rows[rest.duplicates.index.to_numpy()])
    return Partitioned(MatchResult(report, ledger, p_position[order], l_position[order], method[order],
                                   duplicates, rest.report_only, rest.ledger_only), breaks)  # the day's keys: coded if read


def _by_reference(found: MatchResult) -> MatchResult:
    """``found`` with its pairs by reference alone (no other pairs, no duplicates, no unpaired rows)."""
    kept = found.method == METHODS.index("reference")
    return dataclasses.replace(found, p_position=found.p_position[kept], l_position=found.l_position[kept],
                               method=found.method[kept], duplicates=found.duplicates.iloc[:0],
                               report_only=found.report_only.iloc[:0], ledger_only=found.ledger_only.iloc[:0],
                               _cache={})


def count_for(rows: int, per_partition: int | None = None) -> int:
    """How many partitions a day of ``rows`` report rows is matched in (1: one frame).

    By default a day of up to ``ONE_FRAME_ROWS`` rows is one frame and a larger one is cut into
    partitions of ``PARTITION_ROWS``; an explicit ``per_partition`` always cuts at that size."""
    if per_partition is None:
        if rows <= ONE_FRAME_ROWS:
            return 1
        per_partition = PARTITION_ROWS
    return max(1, -(-rows // per_partition))


def other_day_ids(ledger: pd.DataFrame) -> Collection[str]:
    """The transfer ids of the ledger rows outside the business day (what a pair across days can be)."""
    return ledger.loc[~ledger["in_window"].to_numpy(dtype=bool), "transfer_id"].astype(str).tolist()
