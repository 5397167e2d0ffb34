"""Exports of a reconciliation run for finance: CSV, XLSX and a self-contained HTML page.

``export_run(db, result, out_dir, now=...)`` writes into ``out_dir``:

- ``discrepancies.csv`` (``csv_files``): UTF-8 with BOM, one row per discrepancy of the
  (provider, business date), columns in the fixed order ``DISCREPANCY_COLUMNS``;
- ``summary.csv``: count, sum of absolute differences and oldest age by type x
  currency, then the control totals;
- ``reconciliation.xlsx`` (``xlsx``): Summary, Discrepancies, Control totals sheets;
- ``report.html`` (``html``): the morning page, no external assets.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from transfer_wallet.db import Database
from transfer_wallet.reconcile.export.rows import DISCREPANCY_COLUMNS, discrepancy_rows, summary_rows

__all__ = ["DISCREPANCY_COLUMNS", "export_run"]


def export_run(db: Database, result: Any, out_dir: Path, *, now: dt.datetime) -> list[Path]:
    """Write the four files of ``result`` (a ``RunResult``) into ``out_dir``; returns their paths."""
    from transfer_wallet.reconcile.export import csv_files, html, xlsx

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = db.transaction(lambda c: discrepancy_rows(c, result, now=now), readonly=True)
    summary = summary_rows(rows)
    cells = csv_files.discrepancy_cells(rows)  # once, for the CSV and the workbook
    paths = [csv_files.write_discrepancies(out_dir / "discrepancies.csv", cells),
             csv_files.write_summary(out_dir / "summary.csv", summary, result.controls),
             xlsx.write_workbook(out_dir / "reconciliation.xlsx", cells, summary, result.controls),
             html.write_page(out_dir / "report.html", result, rows, summary, now=now)]
    return paths
