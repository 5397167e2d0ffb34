"""How rows become text: columns with roles, a layout that fits the width, and the output formats.

A column declares its *role* so the renderer knows what it may do with it:

======== ============================================ =========================
role     shown as                                     may be
======== ============================================ =========================
id       as is                                        never cut or wrapped
amount   as is, right-aligned                         never cut or wrapped
time     ``YYYY-MM-DD HH:MM:SS`` in the display zone, never cut or wrapped
         the zone named once in the header
duration ``2h``, ``15m``, ``1h30m`` (from seconds)    never cut or wrapped
count    as is, right-aligned                         never cut or wrapped
status   as is                                        never cut or wrapped
text     free text                                    wrapped (last resort)
======== ============================================ =========================

Every column also has a *priority*: 0 is always shown; at a narrow width the
columns with the highest priority number are dropped first (the rightmost of a
tie first) until what is left fits, free text keeping at least ``WRAP_MIN``
characters before it wraps, as ``kubectl get`` and ``gh`` do. What still does
not fit is shown wider than the terminal rather than cut.

Formats: ``table`` (a rich table on a terminal, plain aligned text without box
characters in a pipe), ``tsv`` and ``csv`` (every column, raw values: ISO-8601
times, seconds, decimal strings) and ``json`` (the command's document).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import textwrap
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Sequence

ROLES = ("id", "amount", "time", "duration", "count", "status", "text")
FORMATS = ("table", "tsv", "csv", "json")
#: Free text keeps at least this many characters per line before less useful columns stay.
WRAP_MIN = 24
#: Spaces between two columns of the plain table.
PLAIN_GAP = 2

_AMOUNT_NAMES = {"amount", "balance", "available", "locked", "total", "expected", "actual", "difference", "bet",
                 "win", "refund", "counted", "left", "moved_in", "moved_out"}
_COUNT_NAMES = {"count", "times_seen", "age_days", "attempts", "rows", "clients", "keys_count", "sessions",
                "rounds", "transfers", "seconds", "ratio"}
_STATUS_NAMES = {"status", "state", "kind", "type", "direction", "currency", "outcome", "provider", "base", "quote",
                 "job", "source", "secret_set"}


@dataclass(frozen=True)
class Column:
    """One column of a table: the row key, its role, its priority (0 = never dropped) and its header."""

    key: str
    role: str = "text"
    priority: int = 1
    header: str | None = None

    def __post_init__(self) -> None:
        assert self.role in ROLES, f"unknown column role {self.role!r}"
        assert self.priority >= 0, "priority is 0 (always shown) or more"

    @property
    def wraps(self) -> bool:
        """Only free text may wrap; everything else is shown whole."""
        return self.role == "text"

    @property
    def right_aligned(self) -> bool:
        """Amounts and counts line up on their last digit."""
        return self.role in ("amount", "count")


def infer_column(key: str) -> Column:
    """A column for a bare key, its role guessed from the name (``*_id`` an id, ``*_at`` a time ...)."""
    name = key.lower().replace(" ", "_")
    if name == "id" or name.endswith("_id") or name in ("reference", "name", "key"):
        return Column(key, "id", 0)
    if name.endswith("_at") or name.endswith("_started") or name in ("started", "created", "next_run", "last_started"):
        return Column(key, "time", 2)
    if name.endswith("_s") and not name.endswith("_per_s"):
        return Column(key, "duration", 2)
    if name in _AMOUNT_NAMES or name.startswith("amount_") or name.endswith("_amount") or name.endswith("_balance"):
        return Column(key, "amount", 0)
    if name in _COUNT_NAMES or name.endswith("_per_s") or name.endswith("_days"):
        return Column(key, "count", 1)
    if name in _STATUS_NAMES:
        return Column(key, "status", 1)
    return Column(key, "text", 3)


def columns_of(columns: Iterable[str | Column]) -> list[Column]:
    """Columns as ``Column`` objects: a bare key gets its role from ``infer_column``."""
    return [c if isinstance(c, Column) else infer_column(c) for c in columns]


# -- values -------------------------------------------------------------------------------------


def as_instant(value: Any) -> dt.datetime | None:
    """``value`` as an aware datetime when it is one (or an ISO-8601 string with a time), else None."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, str) and len(value) >= 16 and value[4:5] == "-" and value[10:11] in ("T", " "):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)
    return None


def show_time(value: Any, zone: dt.tzinfo) -> str:
    """An instant as ``YYYY-MM-DD HH:MM:SS`` in ``zone``; anything else unchanged (as text)."""
    instant = as_instant(value)
    if instant is None:
        return "" if value is None else str(value)
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def show_duration(value: Any) -> str:
    """Seconds as a duration: ``45s``, ``15m``, ``2h``, ``1h30m``, ``3d4h``; anything else unchanged."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    try:
        seconds = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    if not seconds.is_finite():
        return str(value)
    sign, whole = ("-" if seconds < 0 else ""), int(abs(seconds))
    if whole < 60:
        fraction = abs(seconds) - whole
        return f"{sign}{abs(seconds).normalize():f}s" if fraction and whole < 10 else f"{sign}{whole}s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        amount, whole = divmod(whole, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return sign + "".join(parts[:2])


def cell(value: Any, column: Column, zone: dt.tzinfo) -> str:
    """The text of one table cell for people."""
    if value is None:
        return ""
    if column.role == "time":
        return show_time(value, zone)
    if column.role == "duration":
        return show_duration(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def raw(value: Any) -> str:
    """The text of one value for tsv/csv: ISO-8601 instants, plain numbers, lists comma-separated."""
    if value is None:
        return ""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def zone_label(zone: dt.tzinfo) -> str:
    """The name of the display zone for a header: ``UTC`` or ``Europe/Malta``."""
    return "UTC" if zone in (dt.timezone.utc,) else str(getattr(zone, "key", zone))


def header(column: Column, zone: dt.tzinfo) -> str:
    """A column's header; a time column names the zone once: ``opened_at (UTC)``."""
    text = column.header or column.key
    if column.role == "duration" and text.endswith("_s"):
        text = text[:-2]
    return f"{text} ({zone_label(zone)})" if column.role == "time" else text


# -- layout -------------------------------------------------------------------------------------


def _text_width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def layout(columns: Sequence[Column], headers: Sequence[str], cells: Sequence[Sequence[str]],
           width: int | None, overhead: int, per_column: int) -> list[tuple[int, int]]:
    """Which columns to show and how wide: ``[(index, width), ...]`` fitting ``width`` where it can.

    ``overhead`` + ``per_column`` x columns is what borders and gaps take. Columns are
    dropped by priority (highest number, then rightmost, first) while the rest do not
    fit with free text at ``WRAP_MIN``; then free text gets the room that is left.
    """
    natural = [max([_text_width(headers[i])] + [_text_width(row[i]) for row in cells]) for i in range(len(columns))]
    least = [min(natural[i], max(WRAP_MIN, len(headers[i]))) if c.wraps else natural[i] for i, c in enumerate(columns)]
    kept = list(range(len(columns)))

    def needed(widths: Sequence[int]) -> int:
        return sum(widths[i] for i in kept) + overhead + per_column * len(kept)

    if width is None:
        return [(i, natural[i]) for i in kept]
    while needed(least) > width:
        droppable = [i for i in kept if columns[i].priority > 0]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda i: (columns[i].priority, i)))
    spare = width - needed(least)
    widths = {i: least[i] for i in kept}
    for i in kept:
        if columns[i].wraps and spare > 0:
            extra = min(spare, natural[i] - least[i])
            widths[i] += extra
            spare -= extra
    return [(i, widths[i]) for i in kept]


def plain_table(columns: Sequence[Column], headers: Sequence[str], cells: Sequence[Sequence[str]],
                width: int | None, *, show_header: bool = True) -> str:
    """Aligned text without box characters: two spaces between columns, free text wrapped."""
    chosen = layout(columns, headers, cells, width, overhead=-PLAIN_GAP, per_column=PLAIN_GAP)
    lines = []
    for row in ([list(headers)] if show_header else []) + [list(r) for r in cells]:
        wrapped = [_wrap(row[i], w) if columns[i].wraps else (row[i].splitlines() or [""]) for i, w in chosen]
        for depth in range(max(len(parts) for parts in wrapped)):
            pieces = []
            for (i, w), parts in zip(chosen, wrapped):
                text = parts[depth] if depth < len(parts) else ""
                pieces.append(text.rjust(w) if columns[i].right_aligned else text.ljust(w))
            lines.append((" " * PLAIN_GAP).join(pieces).rstrip())
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width, break_long_words=True, break_on_hyphens=False) or [""])
    return lines


def delimited(columns: Sequence[Column], rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """Every column, raw values: ``tsv`` (tabs and line breaks in values become spaces) or ``csv``."""
    keys = [c.key for c in columns]
    if fmt == "tsv":
        def clean(text: str) -> str:
            return " ".join(text.replace("\t", " ").splitlines())
        lines = ["\t".join(keys)] + ["\t".join(clean(raw(row.get(k))) for k in keys) for row in rows]
        return "\n".join(lines)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys)
    for row in rows:
        writer.writerow([raw(row.get(k)) for k in keys])
    return buffer.getvalue().rstrip("\n")
