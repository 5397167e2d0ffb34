"""Control totals: count and sum per (currency, direction) on each side, and what the breaks explain.

The provider side counts the report's SUCCESS rows (duplicates included: the
money moved twice). The ledger side counts the completed transfers this run is
responsible for: those of the business day not already paired by a neighbouring
day's run, plus those of the margins this run paired. Each break explains part
of the difference (its provider amount if applied there, minus its ledger
amount if completed); what the breaks do not explain is a
``CONTROL_TOTAL_MISMATCH`` break. A declared trailer line is checked against
the file: its row count against the data rows, its sums (when no row was
unreadable) against the valid rows' amounts per currency.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from transfer_wallet.reconcile.codes import dictionary_codes
from transfer_wallet.reconcile.frame import TrailerTotals
from transfer_wallet.reconcile.ledger_side import APPLIED

GROUP = ["currency", "direction"]
CONTROL_COLUMNS = ("currency", "direction", "provider_count", "provider_sum_minor", "ledger_count",
                   "ledger_sum_minor", "diff_count", "diff_minor", "unexplained_count", "unexplained_minor")


#: ``codes(side, column)``: ``codes.dictionary_codes`` of a column of the ``"report"`` or the ``"ledger"``
#: frame (``MatchResult.column_codes``: the codes classification already worked out).
ColumnCodes = Callable[[str, str], tuple[np.ndarray, Any]]


def _totals(frame: pd.DataFrame, prefix: str, counted: np.ndarray | None = None,
            codes: Callable[[str], tuple[np.ndarray, Any]] | None = None) -> pd.DataFrame:
    """Count and sum of ``amount_minor`` (NA: 0) per (currency, direction) of the ``counted`` rows (all if None).

    Grouped on integer codes (NA a group of its own; ``codes(column)`` gives them if already worked
    out), never on the text itself, and without copying the counted rows out of a million-row frame:
    sums are exact integer additions (``numpy.add.at`` on int64), counts ``bincount``."""
    coded = codes or (lambda column: dictionary_codes(frame[column]))
    (currency, currencies), (direction, directions) = coded("currency"), coded("direction")
    width = max(1, len(directions))
    group = currency.astype(np.intp) * width + direction
    amount = frame["amount_minor"].to_numpy(dtype="int64", na_value=0)
    if counted is not None:
        group, amount = group[counted], amount[counted]
    size = max(1, len(currencies)) * width
    counts = np.bincount(group, minlength=size)
    sums = np.zeros(size, dtype=np.int64)
    np.add.at(sums, group, amount)
    present = np.flatnonzero(counts)
    index = pd.MultiIndex.from_arrays([currencies[present // width], directions[present % width]], names=GROUP)
    return pd.DataFrame({f"{prefix}_count": counts[present].astype(np.int64), f"{prefix}_sum_minor": sums[present]},
                        index=index)


def control_totals(report: pd.DataFrame, ledger: pd.DataFrame, breaks: pd.DataFrame, *,
                   counted: np.ndarray | None = None, codes: ColumnCodes | None = None) -> pd.DataFrame:
    """One row per (currency, direction): both sides' count and sum, the difference
    (provider - ledger) and the part of it no break explains.

    ``counted``: the ledger rows this run is responsible for (a bool per row; all if None);
    ``codes``: the report's and the ledger's column codes if already worked out (see ``ColumnCodes``)."""
    def side_codes(side: str) -> Callable[[str], tuple[np.ndarray, Any]] | None:
        return None if codes is None else (lambda column: codes(side, column))

    report_codes, ledger_codes = side_codes("report"), side_codes("ledger")
    applied_p = _status_is(report, "SUCCESS", report_codes)
    applied_l = _status_is(ledger, APPLIED, ledger_codes)
    if counted is not None:
        applied_l &= counted
    p_side = breaks[breaks["p_status"] == "SUCCESS"]
    l_side = breaks[breaks["l_status"] == APPLIED]
    explained_p = _totals(_side(p_side, "p"), "explained_p")
    explained_l = _totals(_side(l_side, "l"), "explained_l")
    table = pd.concat([_totals(report, "provider", applied_p, report_codes),
                       _totals(ledger, "ledger", applied_l, ledger_codes), explained_p, explained_l], axis=1)
    table = table.fillna(0).astype("int64")
    table["diff_count"] = table["provider_count"] - table["ledger_count"]
    table["diff_minor"] = table["provider_sum_minor"] - table["ledger_sum_minor"]
    table["unexplained_count"] = table["diff_count"] - (table["explained_p_count"] - table["explained_l_count"])
    table["unexplained_minor"] = table["diff_minor"] - (table["explained_p_sum_minor"] - table["explained_l_sum_minor"])
    return table.reset_index()[list(CONTROL_COLUMNS)].sort_values(GROUP, ignore_index=True)


def _status_is(frame: pd.DataFrame, status: str, codes: Callable[[str], tuple[np.ndarray, Any]] | None) -> np.ndarray:
    """Which rows have ``status`` (NA: no), from the status codes when given."""
    if codes is None:
        return (frame["status"] == status).fillna(False).to_numpy(dtype=bool)
    row_codes, labels = codes("status")
    return pd.Series(labels == status).fillna(False).to_numpy(dtype=bool)[row_codes]


def _side(breaks: pd.DataFrame, side: str) -> pd.DataFrame:
    frame = pd.DataFrame({
        "currency": breaks[f"{side}_currency"].astype("string"), "direction": breaks[f"{side}_direction"].astype("string"),
        "amount_minor": pd.to_numeric(breaks[f"{side}_amount_minor"]).fillna(0).astype("int64"),
    })
    return frame


def control_breaks(table: pd.DataFrame) -> pd.DataFrame:
    """``CONTROL_TOTAL_MISMATCH`` breaks for the groups with an unexplained difference."""
    bad = table[(table["unexplained_count"] != 0) | (table["unexplained_minor"] != 0)]
    if bad.empty:  # the usual day: none (building the empty columns costs more than the check)
        return pd.DataFrame()
    return pd.DataFrame({
        "kind": "CONTROL_TOTAL_MISMATCH", "key": "totals:" + bad["currency"].astype(str) + ":" + bad["direction"].astype(str),
        "fields": "count|amount", "p_currency": bad["currency"], "p_direction": bad["direction"],
        "p_amount_minor": bad["provider_sum_minor"], "l_amount_minor": bad["ledger_sum_minor"],
        "l_currency": bad["currency"], "l_direction": bad["direction"],
        "detail": ("control totals " + bad["currency"].astype(str) + " " + bad["direction"].astype(str)
                   + ": provider " + bad["provider_count"].astype(str) + " rows, ledger " + bad["ledger_count"].astype(str)
                   + " rows; unexplained " + bad["unexplained_count"].astype(str) + " rows, "
                   + bad["unexplained_minor"].astype(str) + " minor units"),
    })


def trailer_breaks(trailer: TrailerTotals | None, report: pd.DataFrame, data_rows: int, invalid_rows: int) -> pd.DataFrame:
    """``CONTROL_TOTAL_MISMATCH`` breaks where the declared trailer disagrees with the file."""
    records: list[dict[str, object]] = []
    if trailer is None:
        return pd.DataFrame(records)
    where = f" (trailer on row {trailer.row_number})" if trailer.row_number else ""
    if trailer.row_count is not None and trailer.row_count != data_rows:
        records.append({"kind": "CONTROL_TOTAL_MISMATCH", "key": "trailer:count", "fields": "count",
                        "detail": f"trailer declares {trailer.row_count} rows, the file has {data_rows}{where}"})
    if invalid_rows == 0:
        sums = _sums_by_currency(report)
        for code in sorted(set(trailer.amount_minor_by_currency) | set(sums)):
            declared = trailer.amount_minor_by_currency.get(code)
            actual = sums.get(code, 0)
            if declared is not None and declared != actual:
                records.append({"kind": "CONTROL_TOTAL_MISMATCH", "key": f"trailer:sum:{code}", "fields": "amount",
                                "p_currency": code, "p_amount_minor": declared, "l_currency": code,
                                "l_amount_minor": actual,
                                "detail": f"trailer declares a {code} sum of {declared} minor units, the rows sum to "
                                          f"{actual}{where}"})
    return pd.DataFrame(records)


def _sums_by_currency(report: pd.DataFrame) -> dict[str, int]:
    """The rows' amount sum per (non-NA) currency, exact integers."""
    currency, labels = dictionary_codes(report["currency"])
    sums = np.zeros(len(labels), dtype=np.int64)
    np.add.at(sums, currency, report["amount_minor"].to_numpy(dtype="int64", na_value=0))
    return {str(label): int(total) for label, total in zip(labels, sums) if not pd.isna(label)}
