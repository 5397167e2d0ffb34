"""The simulator's daily transfer report, written in the provider's own CSV format.

One row per transfer (IN/OUT, SUCCESS/FAILED) created during the business date in
the provider's timezone. Column names, value codes, delimiter, decimal separator,
date format and timezone come from the provider's ``ReportFormat``; amounts are in
major units (``12,50`` with a decimal comma).
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from transfer_wallet.config import REPORT_FIELDS, ReportFormat
from transfer_wallet.providers.protocol import Direction, TransferState
from transfer_wallet.simulator.store import SimulatorStore, StoredTransfer


def business_day_window(business_date: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` in UTC of ``business_date`` in ``timezone`` (23-25 h around DST changes)."""
    tz = ReportFormat(columns={}, values={}, timezone=timezone).tzinfo
    start = dt.datetime.combine(business_date, dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(business_date + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def report_row(transfer: StoredTransfer, fmt: ReportFormat) -> dict[str, str]:
    """One transfer as canonical field -> text in the provider's codes and formats."""
    direction = "TRANSFER_IN" if transfer.direction is Direction.IN else "TRANSFER_OUT"
    status = "SUCCESS" if transfer.state is TransferState.APPLIED else "FAILED"
    return {
        "provider_tx_id": transfer.provider_tx_id,
        "reference": transfer.transfer_id,
        "player_id": transfer.player_id,
        "type": fmt.values[direction],
        "amount": transfer.amount.format().replace(".", fmt.decimal_separator),
        "currency": transfer.amount.currency.code,
        "status": fmt.values[status],
        "created_at": transfer.created_at.astimezone(fmt.tzinfo).strftime(fmt.date_format),
    }


def render_report(transfers: list[StoredTransfer], fmt: ReportFormat) -> bytes:
    """The CSV bytes (UTF-8, header row first, ``\\n`` line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=fmt.delimiter, lineterminator="\n")
    writer.writerow([fmt.columns[f] for f in REPORT_FIELDS])
    for transfer in transfers:
        row = report_row(transfer, fmt)
        writer.writerow([row[f] for f in REPORT_FIELDS])
    return buffer.getvalue().encode("utf-8")


def export_report(store: SimulatorStore, fmt: ReportFormat, business_date: dt.date) -> bytes:
    """The report of ``business_date`` from ``store``."""
    start, end = business_day_window(business_date, fmt.timezone)
    return render_report(store.transfers_between(start, end), fmt)
