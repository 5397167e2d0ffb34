"""The simulator's daily transfer report, written in the provider's own CSV format.

One row per transfer (IN/OUT, SUCCESS/FAILED) created during the business date in
the provider's timezone, in every option of the provider's ``ReportFormat``
(``transfer_wallet/reconcile/profile.py``): column names (and the optional
session/round id columns), the first code of each value, delimiter, decimal and
thousands separators, amount scale (major units or integer cents), date format and
timezone, encoding (with a UTF-8 BOM if ``bom``), ``skip_footer_rows`` lines of
"END OF REPORT" at the very end, and the declared trailer line:
one per currency (a lone line with a zero count when there are no rows), counting
every row and summing every amount of that currency, whatever its status.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence

from transfer_wallet.money import Currency
from transfer_wallet.providers.protocol import Direction, TransferState
from transfer_wallet.reconcile.profile import ReportFormat
from transfer_wallet.simulator.store import SimulatorStore, StoredTransfer


def business_day_window(business_date: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` in UTC of ``business_date`` in ``timezone`` (23-25 h around DST changes)."""
    tz = ReportFormat(columns={}, values={}, timezone=timezone).tzinfo
    start = dt.datetime.combine(business_date, dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(business_date + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def format_amount(amount_minor: int, unit: Currency, fmt: ReportFormat) -> str:
    """``amount_minor`` of ``unit`` as the report writes it: scale, thousands and decimal separators."""
    exponent = unit.exponent - (len(str(fmt.amount_scale)) - 1)  # decimals written (negative: scaled up)
    if exponent <= 0:
        whole, fraction = str(amount_minor * 10**-exponent), ""
    else:
        digits = str(amount_minor).rjust(exponent + 1, "0")
        whole, fraction = digits[:-exponent], digits[-exponent:]
    if fmt.thousands_separator and len(whole) > 3:
        head = len(whole) % 3 or 3
        groups = [whole[:head]] + [whole[i:i + 3] for i in range(head, len(whole), 3)]
        whole = fmt.thousands_separator.join(groups)
    return f"{whole}{fmt.decimal_separator}{fraction}" if fraction else whole


def report_row(
    transfer: StoredTransfer, fmt: ReportFormat, *, session_id: str | None = None, round_id: str | None = None,
) -> dict[str, str]:
    """One transfer as canonical field -> text in the provider's codes and formats."""
    direction = "TRANSFER_IN" if transfer.direction is Direction.IN else "TRANSFER_OUT"
    status = "SUCCESS" if transfer.state is TransferState.APPLIED else "FAILED"
    return {
        "provider_tx_id": transfer.provider_tx_id,
        "reference": transfer.transfer_id,
        "player_id": transfer.player_id,
        "type": fmt.code(direction),
        "amount": format_amount(transfer.amount.amount_minor, transfer.amount.currency, fmt),
        "currency": transfer.amount.currency.code,
        "status": fmt.code(status),
        "created_at": transfer.created_at.astimezone(fmt.tzinfo).strftime(fmt.date_format),
        "provider_session_id": session_id or "",
        "provider_round_id": round_id or "",
    }


def _trailer_rows(transfers: Sequence[StoredTransfer], fmt: ReportFormat) -> list[dict[str, str]]:
    spec = fmt.trailer
    if spec is None:
        return []
    units: dict[str, Currency] = {}
    counts: dict[str, int] = {}
    totals: dict[str, int] = {}
    for transfer in transfers:
        code = transfer.amount.currency.code
        units[code] = transfer.amount.currency
        counts[code] = counts.get(code, 0) + 1
        totals[code] = totals.get(code, 0) + transfer.amount.amount_minor
    rows = []
    for code in sorted(units) or [""]:
        row = {spec.marker_field: spec.marker}
        if spec.count_field is not None:
            row[spec.count_field] = str(counts.get(code, 0))
        if spec.amount_field is not None and code:
            row[spec.amount_field] = format_amount(totals[code], units[code], fmt)
            row["currency"] = code
        rows.append(row)
    return rows


def render_report(
    transfers: Sequence[StoredTransfer], fmt: ReportFormat, *,
    session_ids: Mapping[str, str] | None = None, round_ids: Mapping[str, str] | None = None,
) -> bytes:
    """The report bytes: header row first, ``\\n`` line ends, in ``fmt.encoding``.

    ``session_ids`` / ``round_ids`` (by our transfer id) fill the optional columns
    when the profile maps them.
    """
    fields = fmt.mapped_fields()
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=fmt.delimiter, lineterminator="\n")
    writer.writerow([fmt.columns[f] for f in fields])
    for transfer in transfers:
        row = report_row(transfer, fmt, session_id=(session_ids or {}).get(transfer.transfer_id),
                         round_id=(round_ids or {}).get(transfer.transfer_id))
        writer.writerow([row[f] for f in fields])
    for trailer in _trailer_rows(transfers, fmt):
        writer.writerow([trailer.get(f, "") for f in fields])
    buffer.write(f"{fmt.footer_marker}\n" * fmt.skip_footer_rows)  # lines the reader checks and skips
    body = buffer.getvalue().encode(fmt.encoding)
    return (b"\xef\xbb\xbf" + body) if fmt.bom else body


def export_report(store: SimulatorStore, fmt: ReportFormat, business_date: dt.date) -> bytes:
    """The report of ``business_date`` from ``store``."""
    start, end = business_day_window(business_date, fmt.timezone)
    return render_report(store.transfers_between(start, end), fmt)
