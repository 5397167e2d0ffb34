"""Vectorised readers of report cells (amounts, times) and the collector of unreadable cells.

Used by ``ingest``. Every function takes whole pandas columns of text and returns
whole columns: no Python loop over rows. Amounts are read with string operations
into exact integer minor units (never a float); times with the profile's format
in its timezone, to UTC.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from transfer_wallet.reconcile.frame import INVALID_COLUMNS
from transfer_wallet.reconcile.profile import ReportFormat

#: Digits an int64 always holds exactly.
_MAX_DIGITS = 18
_EARLIEST = pd.Timestamp("1970-01-01", tz="UTC")
_LATEST = pd.Timestamp("2200-01-01", tz="UTC")


class Problems:
    """The unreadable cells found so far (one reason per cell: the first), and which rows have one."""

    def __init__(self, index: pd.Index, max_chars: int) -> None:
        self.bad = pd.Series(False, index=index)
        self._max_chars = max_chars
        self._parts: list[pd.DataFrame] = []
        self._flagged: dict[str, pd.Series] = {}

    def flag(self, mask: pd.Series, raw: pd.Series, column: str, reason: str | pd.Series) -> None:
        """Record ``reason`` (text, or per row) for the cells of ``raw`` where ``mask`` holds."""
        mask = mask.fillna(False).astype(bool)
        if column in self._flagged:
            mask &= ~self._flagged[column]
        if not mask.any():
            return
        self._flagged[column] = self._flagged[column] | mask if column in self._flagged else mask
        self.bad |= mask
        picked = raw[mask]
        reasons = reason if isinstance(reason, str) else reason[mask].to_numpy(dtype=object)
        self._parts.append(pd.DataFrame({
            "row_number": picked.index.to_numpy(dtype="int64"),
            "column": column,
            "raw_value": picked.str.slice(0, self._max_chars).to_numpy(dtype=object),
            "reason": reasons,
        }))

    def frame(self, extra: pd.DataFrame) -> pd.DataFrame:
        """Every problem (plus ``extra``), by row number, as the ``INVALID_COLUMNS`` frame."""
        parts = [p for p in (*self._parts, extra) if len(p)]
        if not parts:
            found = pd.DataFrame({c: [] for c in INVALID_COLUMNS})
        else:
            found = pd.concat(parts, ignore_index=True).sort_values("row_number", kind="stable", ignore_index=True)
        return pd.DataFrame({
            "row_number": found["row_number"].to_numpy(dtype="int64"),
            **{c: pd.array(found[c].to_numpy(dtype=object), dtype="string") for c in INVALID_COLUMNS[1:]},
        })


def _number_pattern(profile: ReportFormat) -> str:
    thousands = profile.thousands_separator
    whole = rf"(?:\d{{1,3}}(?:{re.escape(thousands)}\d{{3}})+|\d+)" if thousands else r"\d+"
    return rf"{whole}(?:{re.escape(profile.decimal_separator)}\d+)?"


def parse_amounts(
    raw: pd.Series, codes: pd.Series, exponents: pd.Series, profile: ReportFormat, *,
    allow_zero: bool, limit_minor: int,
) -> tuple[pd.Series, pd.Series]:
    """Report amounts -> (exact int64 minor units of each row's currency, reason or "" per row).

    ``exponents`` is each row's currency exponent (the caller flags unknown
    currencies). The profile's separators and ``amount_scale`` apply: with scale
    100, "1250" is 12.50 EUR; "12.505" EUR, or "1250" JPY in cents, is invalid.
    """
    text = raw.str.strip()
    pattern = _number_pattern(profile)
    readable = text.str.fullmatch(pattern).fillna(False).astype(bool)
    parts = text.str.partition(profile.decimal_separator, expand=True)
    whole, fraction = parts[0], parts[2]
    if profile.thousands_separator:
        whole = whole.str.replace(profile.thousands_separator, "", regex=False)
    digits = (whole + fraction).str.lstrip("0")
    digit_count = digits.str.len().to_numpy(dtype="int64")
    decimals = fraction.str.len().to_numpy(dtype="int64")
    allowed = exponents.to_numpy(dtype="int64") - (len(str(profile.amount_scale)) - 1)
    shift = allowed - decimals
    up, down = np.clip(shift, 0, None), np.clip(-shift, 0, _MAX_DIGITS)
    ok = readable.to_numpy()
    too_many_decimals = ok & (decimals > np.clip(allowed, 0, None))
    too_large = ok & ~too_many_decimals & (digit_count + up > _MAX_DIGITS)
    usable = ok & ~too_many_decimals & ~too_large
    value = digits.where(usable & (digit_count > 0), "0").astype("int64").to_numpy()
    divisor = np.power(10, down, dtype="int64")
    not_whole = usable & (value % divisor != 0)
    minor = value // divisor * np.power(10, up, dtype="int64")
    usable &= ~not_whole
    reasons = pd.Series("", index=raw.index, dtype=object)
    reasons[~ok] = "not an amount"
    reasons[~ok & text.str.fullmatch("-" + pattern).fillna(False).to_numpy(dtype=bool)] = "negative amount"
    reasons[(text == "").to_numpy()] = "empty"
    decimals_reason = "more decimals than " + codes.astype(object) + " allows"
    reasons[too_many_decimals | not_whole] = decimals_reason[too_many_decimals | not_whole]
    reasons[too_large | (usable & (minor > limit_minor))] = "amount too large"
    if not allow_zero:
        reasons[usable & (minor == 0)] = "amount must be positive"
    return pd.Series(np.where(reasons == "", minor, 0), index=raw.index, dtype="int64"), reasons


def parse_times(raw: pd.Series, profile: ReportFormat) -> tuple[pd.Series, pd.Series]:
    """Report times -> (UTC ``datetime64[ns, UTC]``, NaT where unreadable; reason or "" per row).

    Read with ``date_format`` in the profile's timezone (a ``%z`` in the format wins).
    An ambiguous local time (DST ends: the hour repeats) is the earliest instant; a
    nonexistent one (DST starts: the hour is skipped) is invalid.
    """
    text = raw.str.strip()
    fmt = profile.date_format
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc="%z" in fmt)
    unreadable = parsed.isna().to_numpy()
    if "%z" not in fmt:
        earliest = np.ones(len(parsed), dtype=bool)  # True = the DST reading = the earlier instant
        parsed = parsed.dt.tz_localize(profile.timezone, ambiguous=earliest, nonexistent="NaT")
    gap = parsed.isna().to_numpy() & ~unreadable
    out_of_range = ~parsed.isna().to_numpy() & ((parsed < _EARLIEST) | (parsed >= _LATEST)).to_numpy()
    utc = parsed.where(~out_of_range).dt.tz_convert("UTC").dt.as_unit("ns")
    reasons = pd.Series("", index=raw.index, dtype=object)
    reasons[unreadable] = f"not a date in the format {fmt}"
    reasons[(text == "").to_numpy()] = "empty"
    reasons[gap] = f"local time does not exist in {profile.timezone} (DST gap)"
    reasons[out_of_range] = "date out of range"
    return utc, reasons
