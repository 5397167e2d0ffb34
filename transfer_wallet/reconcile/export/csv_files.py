"""``discrepancies.csv`` and ``summary.csv``: UTF-8 with BOM, ISO-8601 UTC, exact decimals, no formula runs.

A text cell that a spreadsheet would run as a formula (starting with ``= + - @``,
a tab or a CR) is prefixed with ``'``; amounts are written from ``Decimal`` as
plain strings (``-1.50``), so a negative amount is a number, never neutralised.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from transfer_wallet.reconcile.export.rows import DISCREPANCY_COLUMNS

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Control characters no spreadsheet cell (XML 1.0) may hold (openpyxl's ILLEGAL_CHARACTERS_RE), plus DEL.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def visible(text: str) -> str:
    """``text`` with every control character a cell cannot hold written as ``\\xNN`` (seen, not dropped)."""
    return CONTROL_CHARACTERS.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


SUMMARY_COLUMNS = ("type", "currency", "count", "open", "sum_abs_diff", "oldest_age_days")


def neutralise(text: str) -> str:
    """``text`` made safe for a spreadsheet cell (CWE-1236): a leading formula character gets a ``'``;
    control characters are written out (``visible``)."""
    text = visible(text)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cell_value(value: Any) -> Any:
    """One value as a cell holds it, shared by the CSV and the workbook: None, a number (int, bool or
    Decimal) as it is, datetimes as ISO-8601 UTC text, dates ISO, any other text neutralised."""
    if value is None or isinstance(value, (int, Decimal)):
        return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return neutralise(str(value))


def cell_text(value: Any) -> str:
    """A ``cell_value`` as CSV text: Decimal exact (``-1.50``), ints and booleans as digits, None empty."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, int):
        return str(int(value))
    return str(value)


def cell(value: Any) -> str:
    """One value as CSV text: Decimal exact, datetimes ISO-8601 UTC, dates ISO, text neutralised."""
    return cell_text(cell_value(value))


def discrepancy_cells(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Every discrepancy row as ``cell_value``s in ``DISCREPANCY_COLUMNS`` order: built once for the
    CSV and the workbook's Discrepancies sheet."""
    return [[cell_value(row[column]) for column in DISCREPANCY_COLUMNS] for row in rows]


def _write(path: Path, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(list(header))
        writer.writerows([cell_text(v) for v in row] for row in rows)
    return path


def write_discrepancies(path: Path, cells: list[list[Any]]) -> Path:
    """One row per discrepancy (``discrepancy_cells``), columns in ``DISCREPANCY_COLUMNS`` order."""
    return _write(path, DISCREPANCY_COLUMNS, cells)


def write_summary(path: Path, summary: list[dict[str, Any]], controls: pd.DataFrame) -> Path:
    """The type x currency summary, a blank line, then the control totals (minor units)."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows([cell(row[c]) for c in SUMMARY_COLUMNS] for row in summary)
        writer.writerow([])
        writer.writerow(["control_totals", *controls.columns])
        writer.writerows(["", *[cell(v.item() if hasattr(v, "item") else v) for v in row]]
                         for row in controls.itertuples(index=False))
    return path
