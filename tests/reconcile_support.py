"""Helpers for the reconciliation tests: canonical report frames and ledger frames from literal rows."""

from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd

from transfer_wallet.reconcile.frame import CANONICAL_DTYPES, INVALID_COLUMNS, ReportFile, TrailerTotals

UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    """``"2026-12-01 10:00"`` as an aware UTC datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def report_frame(rows: list[dict]) -> pd.DataFrame:
    """A canonical report frame; each row needs provider_tx_id, player_id, direction, amount_minor,
    created_at and may give reference (default none), currency (EUR), status (SUCCESS)."""
    records = []
    for number, row in enumerate(rows, start=2):
        records.append({
            "row_number": row.get("row_number", number), "provider_tx_id": row["provider_tx_id"],
            "reference": row.get("reference"), "player_id": row["player_id"], "direction": row["direction"],
            "amount_minor": row["amount_minor"], "currency": row.get("currency", "EUR"),
            "status": row.get("status", "SUCCESS"), "created_at": pd.Timestamp(row["created_at"]),
            "provider_session_id": None, "provider_round_id": None,
        })
    frame = pd.DataFrame.from_records(records, columns=list(CANONICAL_DTYPES))
    return frame.astype(CANONICAL_DTYPES)


def report_file(rows: list[dict], *, invalid: list[dict] | None = None, name: str = "report.csv",
                trailer: TrailerTotals | None = None, salt: str = "") -> ReportFile:
    """A ``ReportFile`` as ingest would hand it over (the hash covers the rows, so equal rows = same file)."""
    frame = report_frame(rows)
    invalid_frame = pd.DataFrame(invalid or [], columns=list(INVALID_COLUMNS))
    digest = hashlib.sha256((frame.to_csv() + invalid_frame.to_csv() + salt).encode()).hexdigest()
    return ReportFile(name=name, size_bytes=len(frame) * 60 + 40, sha256=digest, rows=frame, invalid=invalid_frame,
                      data_rows=len(frame) + len(invalid_frame), trailer=trailer)
