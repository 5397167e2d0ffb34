"""Matching and classifying a large day in key-hash partitions, with the findings of one frame.

One ``match`` over a whole day holds every report and ledger row several times over (the
prefixed copies, the merges, the pairs). Here the day is cut by a hash of our transfer id:

1. a **partition** holds the ledger rows whose transfer id hashes to it and the report rows
   whose reference does; there only the pairs by reference are kept (and classified at
   once; the partition's other frames are then dropped);
2. the **residual** holds what no partition paired by reference, plus the report rows set
   aside at the start; it goes through the whole ``match`` (duplicates, reference, provider
   tx id, player + direction + amount window) and ``classify`` as one frame. It is small:
   the rows without a reference and the breaks (a few percent of a day).

Why the findings are those of one frame: a report row whose reference and provider tx id
are each unique in the file is no duplicate, and its pair by reference is the ledger row
with that id (ids are unique), which lies in the same partition. Every row whose tx id or
reference repeats (hashes are compared: a collision only sets aside one more row) goes to
the residual with every other row of its key, so duplicates are numbered among all of
them. So do the rows that reference a transfer whose provider tx id is one of those
repeated ids: the duplicate kept is the one under a tx id our ledger holds, and that
ledger row must be in the residual to be seen. The later stages (tx id, window) run on
what the reference stage left, which is exactly the residual.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transfer_wallet.reconcile.match import MatchResult, match

#: Report rows per partition: a day larger than this is matched in partitions.
PARTITION_ROWS = 400_000
#: What a ``Partitioned`` keeps of every pair (the pairs' other columns go once classified).
PAIR_COLUMNS = ("l_transfer_id", "l_in_window", "l_position", "method")


@dataclass(frozen=True, slots=True)
class Partitioned:
    """The outcome: every pair (``PAIR_COLUMNS`` only; ``l_position`` in the whole ledger frame), the
    residual's duplicates / report-only / ledger-only rows, and the breaks of all of them."""

    result: MatchResult
    breaks: list[pd.DataFrame]


def _hash(values: pd.Series) -> np.ndarray:
    """A 64-bit hash of each value (NA hashes too: callers mask it)."""
    return pd.util.hash_array(values.to_numpy(dtype=object, na_value=""), categorize=False)


def _repeats(hashes: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Which present values' hash occurs twice or more among the present ones."""
    repeated = np.zeros(len(hashes), dtype=bool)
    repeated[present] = pd.Series(hashes[present]).duplicated(keep=False).to_numpy()
    return repeated


def set_aside(report: pd.DataFrame, ledger: pd.DataFrame) -> np.ndarray:
    """The report rows that go to the residual at once (see the module docstring)."""
    reference, tx = report["reference"].notna().to_numpy(), report["provider_tx_id"].notna().to_numpy()
    tx_hash = _hash(report["provider_tx_id"])
    repeated = _repeats(tx_hash, tx) | _repeats(_hash(report["reference"]), reference)
    aside = repeated | ~reference
    ledger_tx = ledger["provider_tx_id"].notna().to_numpy()
    holders = ledger_tx & np.isin(_hash(ledger["provider_tx_id"]), tx_hash[repeated & tx])
    if holders.any():  # the transfers holding a repeated tx id: their reference rows too
        aside |= reference & np.isin(_hash(report["reference"]), _hash(ledger["transfer_id"][holders]))
    return aside


def partitions(report: pd.DataFrame, ledger: pd.DataFrame, count: int,
               ) -> tuple[pd.DataFrame, Iterator[tuple[pd.DataFrame, pd.DataFrame]]]:
    """``(report rows set aside, the (report, ledger) frames of each partition, made one at a time)``.
    The ledger frames carry ``position_in_day``, the row's position in ``ledger``."""
    aside = set_aside(report, ledger)
    report_part = np.where(aside, -1, (_hash(report["reference"]) % count).astype("int64"))
    ledger_part = (_hash(ledger["transfer_id"]) % count).astype("int64")

    def each() -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        for number in range(count):
            rows = np.flatnonzero(report_part == number)
            positions = np.flatnonzero(ledger_part == number)
            yield report.iloc[rows], ledger.iloc[positions].assign(position_in_day=positions)

    return report.iloc[np.flatnonzero(aside)], each()


Classifier = Callable[[MatchResult, bool], pd.DataFrame]


def match_in_partitions(report: pd.DataFrame, ledger: pd.DataFrame, classify: Classifier, *, window_s: int,
                        count: int) -> Partitioned:
    """Match and classify ``report`` against ``ledger`` in ``count`` partitions and a residual.

    ``classify(result, last)`` gives the breaks of a ``MatchResult`` (``last``: the residual's,
    the one call that should add what belongs to no pair, like the unreadable rows)."""
    aside, each = partitions(report, ledger, count)
    kept: list[pd.DataFrame] = []
    breaks: list[pd.DataFrame] = []
    left_report, left_ledger = [aside], []
    for part_report, part_ledger in each:
        found = match(part_report, part_ledger, window_s=window_s)
        pairs = found.pairs[(found.pairs["method"] == "reference").to_numpy()]
        pairs = pairs.assign(l_position=pairs["l_position_in_day"])
        breaks.append(classify(_only_pairs(pairs, report, ledger), False))
        kept.append(pairs[list(PAIR_COLUMNS)])
        left_report.append(part_report[~part_report["row_number"].isin(pairs["p_row_number"]).to_numpy()])
        left_ledger.append(part_ledger[~part_ledger["position_in_day"].isin(pairs["l_position"]).to_numpy()])
        del found, pairs, part_report, part_ledger
    residual_report = pd.concat(left_report).sort_values("row_number", kind="stable")
    residual_ledger = pd.concat(left_ledger).sort_values("position_in_day", kind="stable")
    del left_report, left_ledger
    rest = match(residual_report, residual_ledger, window_s=window_s)
    rest_pairs = rest.pairs.assign(l_position=rest.pairs["l_position_in_day"])
    rest = MatchResult(rest_pairs, rest.duplicates, rest.report_only,
                       rest.ledger_only.drop(columns=["position_in_day"]))
    breaks.append(classify(rest, True))
    kept.append(rest_pairs[list(PAIR_COLUMNS)])
    pairs = pd.concat(kept, ignore_index=True)
    return Partitioned(MatchResult(pairs, rest.duplicates, rest.report_only, rest.ledger_only), breaks)


def _only_pairs(pairs: pd.DataFrame, report: pd.DataFrame, ledger: pd.DataFrame) -> MatchResult:
    """A ``MatchResult`` of ``pairs`` alone (no duplicates, no unpaired rows)."""
    duplicates = report.iloc[:0].assign(duplicate_of=pd.Series([], dtype=object),
                                        duplicate_value=pd.Series([], dtype="string"),
                                        occurrence=pd.Series([], dtype="int64"))
    return MatchResult(pairs, duplicates, report.iloc[:0], ledger.iloc[:0])


def count_for(rows: int, per_partition: int = PARTITION_ROWS) -> int:
    """How many partitions a day of ``rows`` report rows is matched in (1: one frame)."""
    return max(1, -(-rows // per_partition))


def other_day_ids(ledger: pd.DataFrame) -> Collection[str]:
    """The transfer ids of the ledger rows outside the business day (what a pair across days can be)."""
    return ledger.loc[~ledger["in_window"].to_numpy(dtype=bool), "transfer_id"].astype(str).tolist()
