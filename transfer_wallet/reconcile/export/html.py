"""``report.html``: the morning review page, self-contained (inline CSS and SVG, no script, no fetch).

Totals by type and currency, a bar chart of absolute differences by type, a bar
chart of open discrepancies by age bucket, and the discrepancies largest first.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from transfer_wallet.reconcile.export.csv_files import visible

AGE_BUCKETS = ((0, 1, "0-1 d"), (2, 7, "2-7 d"), (8, 30, "8-30 d"), (31, 60, "31-60 d"), (61, 90, "61-90 d"),
               (91, 10**6, "> 90 d"))
_STYLE = ("body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 24px}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}td.n{text-align:right}"
          "h1{font-size:20px}h2{font-size:16px;margin-top:24px}.ok{color:#070}.bad{color:#a00}")


def bar_chart(title: str, values: list[tuple[str, float]], unit: str = "") -> str:
    """A horizontal bar chart as inline SVG (largest first)."""
    values = sorted(values, key=lambda item: -item[1])
    if not values:
        return f'<p>{escape(title)}: nothing to show</p>'
    top = max(v for _, v in values) or 1
    height = 24 * len(values) + 30
    bars = []
    for index, (label, value) in enumerate(values):
        y = 24 + 24 * index
        width = 360 * value / top
        bars.append(f'<text x="0" y="{y + 14}" font-size="12">{escape(label)}</text>'
                    f'<rect x="200" y="{y}" width="{width:.1f}" height="18" fill="#c0504d"></rect>'
                    f'<text x="{205 + width:.1f}" y="{y + 14}" font-size="12">{escape(_number(value))}{unit}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="680" height="{height}" '
            f'aria-label="{escape(title)}"><text x="0" y="14" font-size="13" font-weight="bold">{escape(title)}</text>'
            + "".join(bars) + "</svg>")


def _number(value: float) -> str:
    return f"{value:,.2f}" if value != int(value) else f"{int(value):,}"


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{escape(str(v))}</td>' if isinstance(v, (int, Decimal)) else f"<td>{escape('' if v is None else visible(str(v)))}</td>"
        for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(result: Any, rows: list[dict[str, Any]], summary: list[dict[str, Any]], *, now: dt.datetime) -> str:
    """The page as one HTML string."""
    by_type: dict[str, Decimal] = defaultdict(Decimal)
    for row in summary:
        by_type[row["type"]] += row["sum_abs_diff"]
    open_rows = [r for r in rows if r["workflow_status"] in ("open", "investigating")]
    ages = Counter(next(label for low, high, label in AGE_BUCKETS if low <= r["age_days"] <= high) for r in open_rows)
    state = (f'<p class="ok">Nothing open.</p>' if not open_rows
             else f'<p class="bad">{len(open_rows)} discrepancies open.</p>')
    parts = [
        f"<h1>Reconciliation {escape(result.provider)} {result.business_date.isoformat()}</h1>", state,
        f"<p>File {escape(result.file_name)} (sha256 {escape(result.file_sha256[:16])}...), run {result.run_id}, "
        f"generated {now.astimezone(dt.timezone.utc).isoformat()}</p>",
        "<h2>Totals by type and currency</h2>",
        _table(["type", "currency", "count", "open", "sum |diff|", "oldest (days)"],
               [[s["type"], s["currency"], s["count"], s["open"], s["sum_abs_diff"], s["oldest_age_days"]]
                for s in summary]),
        bar_chart("Absolute differences by type", [(k, float(v)) for k, v in by_type.items()]),
        bar_chart("Open discrepancies by age", [(k, float(v)) for k, v in ages.items()]),
        "<h2>Discrepancies, largest first</h2>",
        _table(["id", "type", "reference", "player", "currency", "ledger", "provider", "diff", "status", "detail"],
               [[r["discrepancy_id"], r["type"], r["reference"], r["player_id"], r["currency"], r["amount_ledger"],
                 r["amount_provider"], r["amount_diff"], r["workflow_status"], r["detail"]] for r in rows]),
    ]
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Reconciliation '
            f'{escape(result.provider)} {result.business_date.isoformat()}</title><style>{_STYLE}</style></head>'
            f"<body>{''.join(parts)}</body></html>")


def write_page(path: Path, result: Any, rows: list[dict[str, Any]], summary: list[dict[str, Any]], *,
               now: dt.datetime) -> Path:
    """Write the page to ``path``."""
    path.write_text(render(result, rows, summary, now=now), encoding="utf-8")
    return path
