"""Vectorised readers of report cells (amounts, times) and the collector of unreadable cells.

Used by ``ingest``. Every function takes whole pandas columns of text and returns
whole columns: no Python loop over rows. Amounts are read on a numpy character
matrix into exact integer minor units (never a float); times once per distinct
text with the profile's format in its timezone, to UTC (the caller spreads them to
the rows). Checks that are rarely needed run only after a cheap scan of the whole
column says they can matter (``has_match``).
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

    def __init__(self, row_numbers: np.ndarray, max_chars: int) -> None:
        self.row_numbers = row_numbers
        self.bad = np.zeros(len(row_numbers), dtype=bool)
        self._max_chars = max_chars
        self._parts: list[pd.DataFrame] = []
        self._flagged: dict[str, np.ndarray] = {}

    def flag(self, mask: np.ndarray | pd.Series, raw: pd.Series, column: str, reason: str | np.ndarray) -> None:
        """Record ``reason`` (text, or one per row) for the cells of ``raw`` where ``mask`` holds."""
        mask = np.asarray(mask, dtype=bool)
        if column in self._flagged:
            mask = mask & ~self._flagged[column]
        if not mask.any():
            return
        self._flagged[column] = self._flagged[column] | mask if column in self._flagged else mask
        self.bad |= mask
        self._parts.append(pd.DataFrame({
            "row_number": self.row_numbers[mask],
            "column": column,
            "raw_value": raw[mask].str.slice(0, self._max_chars).to_numpy(dtype=object),
            "reason": reason if isinstance(reason, str) else np.asarray(reason, dtype=object)[mask],
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


def has_match(cells: pd.Series | np.ndarray, pattern: re.Pattern[str]) -> bool:
    """Whether any cell of ``cells`` has a match of ``pattern`` (a one-character class).

    One C-level scan of the cells joined into one text instead of one call per cell:
    a one-character pattern matches the joined text exactly where it matches a cell.
    A cell that is not text (NA) is set aside.
    """
    values = np.asarray(cells, dtype=object)
    try:
        joined = "".join(values)
    except TypeError:  # an NA among the cells
        joined = "".join(v for v in values if isinstance(v, str))
    return pattern.search(joined) is not None


#: Longest amount cell read (longer ones are "not an amount"); amounts are parsed in chunks of rows.
_MAX_AMOUNT_CHARS = 40
_CHUNK_ROWS = 100_000
_NUL = re.compile("\x00")
_POWERS = 10 ** np.arange(_MAX_DIGITS, dtype="int64")
_OK, _NOT_AMOUNT, _NEGATIVE, _EMPTY, _TOO_LARGE, _DECIMALS, _ZERO = range(7)
_REASONS = np.array(["", "not an amount", "negative amount", "empty", "amount too large", "", "amount must be positive"],
                    dtype=object)


def _char_matrix(values: np.ndarray, limit: int, ascii_separators: bool) -> np.ndarray:
    """The texts as a (rows, ``limit``) matrix of character codes, each cut at ``limit`` characters.

    One byte per character when every text is ASCII (a quarter of the memory to pass over),
    else four; a byte matrix only if the separators compared with it are ASCII too.
    """
    if ascii_separators:
        try:
            return values.astype(f"S{limit}").view(np.uint8).reshape(len(values), limit)
        except UnicodeEncodeError:  # a non-ASCII character: the wide matrix below
            pass
    return values.astype(f"U{limit}").view(np.uint32).reshape(len(values), limit)


def _read_numbers(values: np.ndarray, profile: ReportFormat) -> tuple[np.ndarray, ...]:
    """Digits, fraction length and shape checks of a chunk of amount texts, as a character matrix.

    Returns (well_formed, negative, empty, value, significant_digits, fraction_digits):
    ``value`` is the integer of all digits (separators dropped), exact while
    ``significant_digits`` <= 18.
    """
    limit = _MAX_AMOUNT_CHARS + 1  # a cell reaching the last column was longer than the limit
    matrix = _char_matrix(values, limit, (profile.decimal_separator + (profile.thousands_separator or "")).isascii())
    used = np.flatnonzero(matrix.any(axis=0))
    width = int(used[-1]) + 2 if len(used) else 1  # the widest cell, plus one empty column
    # Transposed, one row per character position: every pass and sum below runs along long rows.
    chars = np.ascontiguousarray(matrix[:, :width].T)
    width = chars.shape[0]
    position = np.arange(width)[:, None]
    filled = chars != 0
    length = filled.sum(axis=0)
    layout = (filled == (position < length)).all(axis=0) & (length < limit)
    negative = chars[0] == ord("-")
    start = negative.astype(np.int64)
    body = (position >= start) & (position < length)
    digit = body & (chars >= ord("0")) & (chars <= ord("9"))
    decimal = body & (chars == ord(profile.decimal_separator))
    decimal_count = decimal.sum(axis=0)
    decimal_at = np.where(decimal_count == 1, decimal.argmax(axis=0), length)
    fraction = np.where(decimal_count == 1, length - decimal_at - 1, 0)
    whole = decimal_at - start
    thousands_ok = np.ones(len(values), dtype=bool)
    separator = np.zeros_like(body)
    if profile.thousands_separator:
        separator = body & (chars == ord(profile.thousands_separator))
        group = body & (position > start) & (position < decimal_at) & (((decimal_at - position) & 3) == 0)
        grouped = separator.any(axis=0)
        thousands_ok = ~grouped | ((separator == group).all(axis=0) & (whole % 4 != 0))
    well = (layout & thousands_ok & (decimal_count <= 1) & (whole >= 1) & ((decimal_count == 0) | (fraction >= 1))
            & (digit | decimal | separator | ~body).all(axis=0))
    value = np.zeros(len(values), dtype=np.int64)
    significant = np.zeros(len(values), dtype=np.int64)  # digits from the first non-zero one
    for column in range(width):  # a loop over character positions (at most 41), never over rows
        is_digit = digit[column]
        figure = chars[column].astype(np.int64) - ord("0")
        significant += is_digit & ((significant > 0) | (figure > 0))
        grow = is_digit & (significant <= _MAX_DIGITS)
        value = np.where(grow, value * 10 + figure, value)
    return well, negative, length == 0, value, significant, fraction


def _amounts(
    values: np.ndarray, exponents: np.ndarray, profile: ReportFormat, allow_zero: bool, limit_minor: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(minor units, reason kind) of a chunk of amount texts."""
    well, negative, empty, value, significant, decimals = _read_numbers(values, profile)
    allowed = exponents - (len(str(profile.amount_scale)) - 1)  # decimals the report may carry (negative: must end in zeros)
    up, down = np.clip(allowed - decimals, 0, None), np.clip(decimals - allowed, 0, _MAX_DIGITS - 1)
    too_many = decimals > np.clip(allowed, 0, None)
    too_large = significant + up > _MAX_DIGITS
    not_whole = value % _POWERS[down] != 0
    amount = value // _POWERS[down] * _POWERS[np.clip(up, 0, _MAX_DIGITS - 1)]
    kind = np.select(
        [empty, ~well, negative, too_large, too_many | not_whole, amount > limit_minor, (amount == 0) & (not allow_zero)],
        [_EMPTY, _NOT_AMOUNT, _NEGATIVE, _TOO_LARGE, _DECIMALS, _TOO_LARGE, _ZERO], _OK)
    return np.where(too_large, 0, amount), kind


def parse_amounts(
    raw: pd.Series, codes: pd.Series, exponents: np.ndarray, profile: ReportFormat, *,
    allow_zero: bool, limit_minor: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Report amounts -> (exact int64 minor units of each row's currency, reason or "" per row).

    Vectorised over a character matrix (numpy), in chunks of rows; never a float.
    ``exponents`` is each row's currency exponent (the caller flags unknown
    currencies). The profile's separators and ``amount_scale`` apply: with scale
    100, "1250" is 12.50 EUR; "12.505" EUR, or "1250" JPY in cents, is invalid.
    """
    values = raw.to_numpy(dtype=object)
    minor = np.zeros(len(values), dtype=np.int64)
    kind = np.zeros(len(values), dtype=np.int64)
    for first in range(0, len(values), _CHUNK_ROWS):
        chunk = slice(first, first + _CHUNK_ROWS)
        minor[chunk], kind[chunk] = _amounts(values[chunk], exponents[chunk], profile, allow_zero, limit_minor)
    retry = np.flatnonzero(kind == _NOT_AMOUNT)  # padded with spaces? read again without them
    if len(retry):
        stripped = raw.iloc[retry].str.strip().to_numpy(dtype=object)
        again = retry[stripped != values[retry]]
        if len(again):
            cleaned = raw.iloc[again].str.strip().to_numpy(dtype=object)
            minor[again], kind[again] = _amounts(cleaned, exponents[again], profile, allow_zero, limit_minor)
    # numpy's fixed-width text drops trailing NULs ("13.00\x00" would read 13.00): such a cell is no amount.
    if has_match(values, _NUL):
        kind = np.where(raw.astype("string").str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool),
                        _NOT_AMOUNT, kind)
    reasons = _REASONS[kind]
    decimals_rows = kind == _DECIMALS
    if decimals_rows.any():
        reasons[decimals_rows] = ("more decimals than " + codes[decimals_rows].astype(object) + " allows").to_numpy()
    return np.where(kind == _OK, minor, 0), reasons


def parse_times(raw: pd.Series, profile: ReportFormat) -> tuple[np.ndarray, pd.api.extensions.ExtensionArray, np.ndarray]:
    """Report times, read once per distinct text -> (each row's index into the distinct texts;
    their UTC times, ``datetime64[ns, UTC]``, NaT where unreadable; their reasons, "" if readable).

    A row's time is ``times.take(positions)``, its reason ``reasons[positions]``: spreading to
    the rows is left to the caller, who needs it only for the rows it keeps or flags.

    Read with ``date_format`` in the profile's timezone (a ``%z`` in the format wins).
    An ambiguous local time (DST ends: the hour repeats) is the earliest instant; a
    nonexistent one (DST starts: the hour is skipped) is invalid.
    """
    codes, uniques = pd.factorize(raw.to_numpy(dtype=object))  # a day has at most 86,400 distinct seconds
    text = pd.Series(uniques, dtype=object).str.strip()
    fmt = profile.date_format
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc="%z" in fmt)
    unreadable = parsed.isna().to_numpy()
    if "%z" not in fmt:
        earliest = np.ones(len(parsed), dtype=bool)  # True = the DST reading = the earlier instant
        parsed = parsed.dt.tz_localize(profile.timezone, ambiguous=earliest, nonexistent="NaT")
    gap = parsed.isna().to_numpy() & ~unreadable
    out_of_range = ~parsed.isna().to_numpy() & ((parsed < _EARLIEST) | (parsed >= _LATEST)).to_numpy()
    utc = parsed.where(~out_of_range).dt.tz_convert("UTC").dt.as_unit("ns")
    reasons = np.full(len(uniques), "", dtype=object)
    reasons[unreadable] = f"not a date in the format {fmt}"
    reasons[(text == "").to_numpy()] = "empty"
    reasons[gap] = f"local time does not exist in {profile.timezone} (DST gap)"
    reasons[out_of_range] = "date out of range"
    return codes, utc.array, reasons
