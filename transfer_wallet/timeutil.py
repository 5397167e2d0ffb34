"""Instants: ISO 8601 date-times with a UTC offset, parsed in one place.

The CLI's ``--now``/``--effective-at``, a self-exclusion end and the times on the
provider wire all go through :func:`parse_instant`. An instant is bounded to the
years 2000-2999 (UTC): anything outside is a typo, and the calendar's own limits
(year 1, year 9999) overflow as soon as an offset is applied or a timeout added.
"""

from __future__ import annotations

import datetime as dt
import re

from transfer_wallet.errors import ValidationError

EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
"""The earliest instant accepted."""

LATEST = dt.datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
"""The latest instant accepted: a year of timeouts or windows later still fits a ``datetime``."""

EXAMPLE = "2026-11-24T12:00:00+00:00"

# ASCII digits and one "T" or space: ``fromisoformat`` alone takes any separator (a newline too).
_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,6})?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?"
)


def _quote(text: object) -> str:
    quoted = repr(text)
    return quoted if len(quoted) <= 40 else quoted[:36] + "...'"


def check_instant(value: dt.datetime, what: str = "instant") -> dt.datetime:
    """``value`` in UTC if it is aware and within years 2000-2999, else ``ValidationError``."""
    if not isinstance(value, dt.datetime):
        raise ValidationError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{what} needs a UTC offset, e.g. {EXAMPLE}")
    try:
        utc = value.astimezone(dt.timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValidationError(f"{what} {_quote(value.isoformat())} is outside the years 2000-2999 (UTC)")
    return utc


def parse_instant(text: str, what: str = "instant", *, naive_is_utc: bool = False) -> dt.datetime:
    """An aware UTC datetime from ISO 8601 text with an offset (``Z`` too), years 2000-2999.

    ``naive_is_utc`` also accepts a date or a date-time without offset, read as UTC.
    Anything else raises ``ValidationError`` with a one-line message naming ``what``.
    """
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be ISO 8601 text, not {type(text).__name__}")
    try:
        if not _ISO.fullmatch(text.strip(" ")):
            raise ValueError(text)
        value = dt.datetime.fromisoformat(text.strip(" "))
    except ValueError:
        like = f"date or date-time like 2027-01-01 or {EXAMPLE}" if naive_is_utc else f"date-time like {EXAMPLE}"
        raise ValidationError(f"{what} {_quote(text)} is not an ISO 8601 {like}") from None
    if value.tzinfo is None:
        if not naive_is_utc:
            raise ValidationError(f"{what} {_quote(text)} needs a UTC offset, e.g. {EXAMPLE}")
        value = value.replace(tzinfo=dt.timezone.utc)
    return check_instant(value, what)


__all__ = ["EARLIEST", "LATEST", "check_instant", "parse_instant"]
