"""TEMPORARY stand-in for ``ingest.ingest_report`` until the ingest stage lands: reads a report
already in the canonical layout (header ``provider_tx_id,reference,player_id,type,amount,currency,
status,created_at``; amounts in major units with ``.``; ISO-8601 times with an offset; UTF-8).

To be deleted once ``transfer_wallet/reconcile/ingest.py`` exists (``run.load_report`` prefers it).
Unreadable rows become ``invalid`` entries; an unreadable file is a ``ValidationError``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from decimal import Decimal, InvalidOperation

import pandas as pd  # type: ignore[import-untyped]

from transfer_wallet.errors import ValidationError
from transfer_wallet.money import MoneyError, currency
from transfer_wallet.reconcile.frame import CANONICAL_DTYPES, INVALID_COLUMNS, ReportFile

HEADER = ("provider_tx_id", "reference", "player_id", "type", "amount", "currency", "status", "created_at")
_TYPES = {"TRANSFER_IN": "IN", "TRANSFER_OUT": "OUT", "IN": "IN", "OUT": "OUT"}


def read_canonical_csv(data: bytes, *, name: str) -> ReportFile:
    """The canonical CSV ``data`` as a ``ReportFile``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{name}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in HEADER if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationError(f"{name}: missing column(s) {', '.join(missing)}")
    rows, invalid = [], []
    for number, raw in enumerate(reader, start=2):
        row, problem = _row(raw, number)
        if problem:
            invalid.append(problem)
        else:
            rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=list(CANONICAL_DTYPES)).astype(CANONICAL_DTYPES)
    return ReportFile(name=name, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), rows=frame,
                      invalid=pd.DataFrame(invalid, columns=list(INVALID_COLUMNS)), data_rows=len(rows) + len(invalid))


def _row(raw: dict[str, str], number: int) -> tuple[dict[str, object], dict[str, object] | None]:
    def bad(column: str, reason: str) -> tuple[dict[str, object], dict[str, object]]:
        return {}, {"row_number": number, "column": column, "raw_value": raw.get(column), "reason": reason}

    if _TYPES.get(raw["type"]) is None:
        return bad("type", "unknown type")
    if raw["status"] not in ("SUCCESS", "FAILED"):
        return bad("status", "unknown status")
    try:
        unit = currency(raw["currency"])
    except MoneyError:
        return bad("currency", "unknown currency")
    try:
        amount = Decimal(raw["amount"])
        if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -unit.exponent:  # type: ignore[operator]
            return bad("amount", f"not an amount with at most {unit.exponent} decimals")
    except InvalidOperation:
        return bad("amount", "not a number")
    try:
        at = dt.datetime.fromisoformat(raw["created_at"])
        if at.tzinfo is None:
            return bad("created_at", "no UTC offset")
    except ValueError:
        return bad("created_at", "not an ISO-8601 time")
    return {
        "row_number": number, "provider_tx_id": raw["provider_tx_id"], "reference": raw["reference"] or None,
        "player_id": raw["player_id"], "direction": _TYPES[raw["type"]],
        "amount_minor": int(amount.scaleb(unit.exponent)), "currency": unit.code, "status": raw["status"],
        "created_at": pd.Timestamp(at).tz_convert("UTC"), "provider_session_id": None, "provider_round_id": None,
    }, None
