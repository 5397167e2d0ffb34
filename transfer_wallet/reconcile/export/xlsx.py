"""``reconciliation.xlsx``: Summary, Discrepancies (amounts as numbers, frozen header, filters), Control totals.

Amounts are written as numbers with the currency's decimals as the cell format
(``0.00`` for EUR, ``0`` for JPY); text cells are neutralised like the CSV so
that nothing runs as a formula; times are written as ISO-8601 UTC text.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter

from transfer_wallet.reconcile.export.csv_files import SUMMARY_COLUMNS, neutralise
from transfer_wallet.reconcile.export.rows import DISCREPANCY_COLUMNS

_AMOUNTS = {"amount_ledger", "amount_provider", "amount_diff", "sum_abs_diff"}


def _value(value: Any) -> Any:
    if value is None or isinstance(value, (int, Decimal)):
        return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return neutralise(str(value))


def _format(value: Decimal) -> str:
    exponent = value.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return "0" if decimals == 0 else "0." + "0" * decimals


def _sheet(book: Workbook, title: str, columns: Sequence[str], rows: list[list[Any]]) -> None:
    """One sheet, streamed (write-only: each row is written once, never held as cell objects)."""
    sheet = book.create_sheet(title)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(rows) + 1}"
    for index, column in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = max(10, min(40, len(column) + 4))
    sheet.append(list(columns))
    amounts = [index for index, column in enumerate(columns) if column in _AMOUNTS]
    for values in rows:
        cells = [_value(v) for v in values]
        for index in amounts:
            if isinstance(values[index], Decimal):
                cell = WriteOnlyCell(sheet, value=values[index])
                cell.number_format = _format(values[index])
                cells[index] = cell
        sheet.append(cells)


def write_workbook(path: Path, rows: list[dict[str, Any]], summary: list[dict[str, Any]],
                   controls: pd.DataFrame) -> Path:
    """Write the three sheets to ``path``."""
    book = Workbook(write_only=True)
    _sheet(book, "Summary", SUMMARY_COLUMNS, [[row[c] for c in SUMMARY_COLUMNS] for row in summary])
    _sheet(book, "Discrepancies", DISCREPANCY_COLUMNS, [[row[c] for c in DISCREPANCY_COLUMNS] for row in rows])
    _sheet(book, "Control totals", list(controls.columns),
           [[v.item() if hasattr(v, "item") else v for v in row] for row in controls.itertuples(index=False)])
    book.save(path)
    return path
