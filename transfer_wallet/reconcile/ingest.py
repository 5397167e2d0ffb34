"""Ingest: a provider's report file, read with its profile, into the canonical frame.

``ingest_report(source, profile)`` reads every cell as text with pandas' C engine
(``dtype=object``, no NA filter: pandas never parses a number or a date), maps the
profile's columns and codes, and validates vectorised (no Python loop over rows):
codes, currencies and times are read once per distinct value; amounts on a numpy
character matrix (``values.py``). What it returns (``ReportFile``):

- ``rows``: the canonical frame of ``frame.py``: amounts as exact integer minor units
  of the row's currency (digit arithmetic in int64, never a float), times in UTC;
- ``invalid``: one row per unreadable cell: the file row number (header = 1, first
  data row = 2, as a text editor shows it, as long as no quoted field holds a line
  break), the provider's column name, the raw value (cut at 256 characters) and the reason;
- ``trailer``: what the declared trailer line(s) say, if the profile declares one.

Decisions:
- a UTF-8 BOM is accepted whatever the declared encoding (it can only mean UTF-8);
- an ambiguous local time (the repeated hour when DST ends) is read as the earliest
  instant; a local time that does not exist (the hour skipped when DST starts) is invalid;
- blank lines are ignored; a line with more fields than the header is invalid;
- cells are padded-tolerant (codes, currency, amount, time are read stripped; the
  currency upper-cased); a trailer marker must match exactly;
- the ``reference`` (our transfer id) and the optional session/round ids may be empty
  (``<NA>``); the provider's transaction id and the player id may not. Ids are kept
  verbatim: a formula in a player id is data here (the exporter neutralises it).

A file that cannot be read at all raises ``ReportFileError`` with one line: empty,
undecodable for its encoding, no header, a mapped column missing or named twice, a
declared trailer missing or misplaced, CSV that cannot be tokenised. A header-only
file is zero rows, not an error.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from transfer_wallet.errors import ValidationError
from transfer_wallet.money import MAX_AMOUNT_MINOR, all_currencies
from transfer_wallet.reconcile.frame import ReportFile, TrailerTotals, empty_frame
from transfer_wallet.reconcile.ingest_lines import MAX_FIELD_CHARS, PART_BYTES, Part, bad_lines, longest_line, parts
from transfer_wallet.reconcile.profile import STATUS_VALUES, TYPE_VALUES, ReportFormat
from transfer_wallet.reconcile.values import Problems, has_match, parse_amounts, parse_times

#: A header line longer than this is not a header.
MAX_HEADER_BYTES = 65_536
_UTF8_BOM = codecs.BOM_UTF8
_SKIPPED_LINE = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")
_DIRECTIONS = {"TRANSFER_IN": "IN", "TRANSFER_OUT": "OUT"}
_EXPONENTS: dict[str, int] = {c.code: c.exponent for c in all_currencies()}
_CURRENCY_CODES: dict[str, str] = {code: code for code in _EXPONENTS}


class ReportFileError(ValidationError):
    """The report file cannot be read at all (one-line message): nothing is reconciled or written."""


def ingest_report(source: bytes | str | Path, profile: ReportFormat, *, name: str | None = None) -> ReportFile:
    """Read a provider report (bytes, or a path as ``str``/``Path``) with ``profile``.

    Returns the valid canonical rows, the invalid cells, the trailer totals and the
    file's name, size and SHA-256; raises ``ReportFileError`` if the file cannot be read.
    """
    raw, name = _read_source(source, name)
    content = _utf8_content(raw, profile, name)
    _check_header(content, profile, name)
    longest, has_nul = longest_line(content), _NUL_STAND_IN in content
    cut = parts(content, PART_BYTES)
    if len(cut) > 1:
        rows, invalid, trailer = _read_parts(content, cut, profile, name, longest, has_nul)
    else:
        table, bad = _tokenise(content, profile, name)
        del content  # (the cells hold what is needed; raw stays for the hash)
        table, trailer = _split_trailer(_without_blank_lines(table), profile, name)
        rows, problems = _validate(table, profile, longest, has_nul=has_nul)
        invalid = problems.frame(extra=bad)
    data_rows = len(rows) + int(invalid["row_number"].nunique())
    return ReportFile(
        name=name,
        size_bytes=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        rows=rows,
        invalid=invalid,
        data_rows=data_rows,
        trailer=trailer,
    )


def _read_source(source: bytes | str | Path, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<report>"
    path = Path(source)
    try:
        return path.read_bytes(), name or path.name
    except OSError as exc:
        raise ReportFileError(f"cannot read report {path}: {exc.strerror or exc}") from exc


_NUL = "[\x00\ufffd]"
_WHITESPACE = re.compile(r"\s")  # exactly the characters for which str.isspace() holds
_NUL_STAND_IN = "\N{REPLACEMENT CHARACTER}".encode("utf-8")


def _utf8_content(raw: bytes, profile: ReportFormat, name: str) -> bytes:
    """The file as UTF-8 bytes, without BOM and without the profile's footer lines."""
    encoding = profile.encoding
    if raw.startswith(_UTF8_BOM):
        raw, encoding = raw[len(_UTF8_BOM):], "utf-8"
    try:
        if codecs.lookup(encoding).name == "utf-8":
            if not raw.isascii():  # ASCII is valid UTF-8 (a scan far cheaper than decoding)
                raw.decode("utf-8")  # validates; pandas then reads the same bytes
            content = raw
        else:
            content = raw.decode(encoding).lstrip("\ufeff").encode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ReportFileError(f"{name}: line {line} is not valid {encoding} (byte {exc.start})") from None
    if not content or content.isspace():  # what strip() would empty, without copying the file
        raise ReportFileError(f"{name}: the file is empty")
    footer = profile.skip_footer_rows
    if not footer and (not content.endswith(b"\n") or content[-2:-1] in (b"\r", b"\n")):
        content = content.rstrip(b"\r\n") + b"\n"  # else it ends in one plain "\n" already: no copy
    if footer:
        parts = content.rstrip(b"\r\n").rsplit(b"\n", footer)
        if len(parts) <= footer:
            raise ReportFileError(f"{name}: fewer lines than a header and {footer} footer line(s)")
        # A footer must be recognisable: a file that comes without it would otherwise lose its last rows unread.
        if not parts[1].lstrip().startswith(profile.footer_marker.strip().encode("utf-8")):
            raise ReportFileError(f"{name}: the last {footer} line(s) are not the footer "
                                  f"(the first must start with {profile.footer_marker.strip()!r})")
        content = parts[0].rstrip(b"\r\n") + b"\n"
    # pandas' C parser ends a cell at a NUL byte ("13.00\x00" would read 13.00); no text cell holds one
    # legitimately, so it becomes U+FFFD, which no amount, id, code or time accepts: the cell is invalid.
    return content.replace(b"\x00", _NUL_STAND_IN) if b"\x00" in content else content


def _check_header(content: bytes, profile: ReportFormat, name: str) -> None:
    """The header names every mapped column once (it is the first line)."""
    end = content.find(b"\n")
    first = content[: end if end >= 0 else len(content)].rstrip(b"\r")
    if len(first) > MAX_HEADER_BYTES:
        raise ReportFileError(f"{name}: no header row (the first line is longer than {MAX_HEADER_BYTES} bytes)")
    header = next(csv.reader([first.decode("utf-8")], delimiter=profile.delimiter), [])
    wanted = [profile.columns[f] for f in profile.mapped_fields()]
    missing = [c for c in wanted if c not in header]
    if len(missing) == len(wanted):
        raise ReportFileError(f"{name}: no header row (the first line names none of the columns {', '.join(wanted)})")
    if missing:
        raise ReportFileError(f"{name}: required column(s) missing from the header: {', '.join(missing)}")
    twice = sorted({c for c in wanted if header.count(c) > 1})
    if twice:
        raise ReportFileError(f"{name}: column(s) named twice in the header: {', '.join(twice)}")


def _tokenise(content: bytes, profile: ReportFormat, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every cell as text, indexed by file row number; and the lines with too many fields."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            table = pd.read_csv(
                io.BytesIO(content), sep=profile.delimiter, dtype=object, na_filter=False, keep_default_na=False,
                skip_blank_lines=False, on_bad_lines="warn", engine="c", encoding="utf-8", index_col=False,
                quotechar='"',
            )
        except (pd.errors.ParserError, ValueError, OverflowError) as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ReportFileError(f"{name}: not readable as CSV ({reason})") from None
    skipped = [m for w in caught for m in _SKIPPED_LINE.finditer(str(w.message))]
    lines = np.array(sorted(int(m.group(1)) for m in skipped), dtype="int64")
    candidates = np.arange(2, len(table) + len(lines) + 2, dtype="int64")
    table.index = pd.Index(np.setdiff1d(candidates, lines, assume_unique=True), dtype="int64")
    return table[[profile.columns[f] for f in profile.mapped_fields()]], bad_lines(content, skipped, profile.delimiter)


def _without_blank_lines(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without the rows of blank lines (every cell empty)."""
    if table.empty:
        return table
    maybe = _equal(table.iloc[:, 0], "")
    if not maybe.any():
        return table
    blank = np.zeros(len(table), dtype=bool)
    blank[maybe] = (table[maybe] == "").all(axis=1).to_numpy()
    return table[~blank]


def _equal(cells: pd.Series, text: str) -> np.ndarray:
    """``cells == text`` as a bool array: numpy compares a column of Python strings several times faster than pandas."""
    return np.asarray(cells.to_numpy(dtype=object) == text, dtype=bool)


def _read_parts(content: bytes, cut: list[Part], profile: ReportFormat, name: str, longest: int, has_nul: bool,
                ) -> tuple[pd.DataFrame, pd.DataFrame, TrailerTotals | None]:
    """``(rows, invalid, trailer)`` of a large file read one part at a time (``ingest_lines.parts``):
    the same as reading it whole, with the cells of one part alive at a time."""
    header = content[:cut[0].start]
    # After the first part, a row of empty cells comes first: pandas reads a first row with too many
    # fields otherwise than any later one (it drops the extra field instead of skipping the line).
    spacer = (profile.delimiter * (len(next(csv.reader([header.decode("utf-8")], delimiter=profile.delimiter))) - 1)
              ).encode("utf-8") + b"\n"
    trailers = _TrailerLines(profile, name)
    frames, problems = [], []
    for number, part in enumerate(cut):
        lead = spacer if number else b""
        table, bad = _tokenise(header + lead + content[part.start:part.end], profile, name)
        shift = part.first_line - 2 - (1 if number else 0)  # the part's first line: row 2 (3) of what was read
        table.index += shift
        bad["row_number"] += shift
        if number:
            table = table.drop(index=part.first_line - 1)
        rows, found = _validate(trailers.take(_without_blank_lines(table)), profile, longest, has_nul=has_nul)
        del table
        frames.append(rows)
        problems.append(found.frame(extra=bad))
    trailer = trailers.totals()
    rows = pd.concat(frames, ignore_index=True)
    invalid = pd.concat([p for p in problems if len(p)] or problems[:1], ignore_index=True)
    return rows, invalid, trailer


class _TrailerLines:
    """The declared trailer across the parts of a file: ``take`` strips it off each part's table
    (it must be the last lines of the file), ``totals`` reads it as ``_split_trailer`` does."""

    def __init__(self, profile: ReportFormat, name: str) -> None:
        self.profile, self.name = profile, name
        self.lines: list[pd.DataFrame] = []

    def take(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` without its trailer lines; ``ReportFileError`` if a trailer line is not at the end."""
        spec = self.profile.trailer
        if spec is None or table.empty:
            return table
        is_trailer = _equal(table[self.profile.columns[spec.marker_field]], spec.marker)
        first = int(np.argmax(is_trailer)) if is_trailer.any() else len(table)
        if (self.lines and first > 0) or not is_trailer[first:].all():
            at = self.lines[0].index[0] if self.lines else table.index[first]
            raise ReportFileError(f"{self.name}: row {int(at)}: the trailer line is not at the end of the file")
        if first < len(table):
            self.lines.append(table.iloc[first:])
        return table.iloc[:first]

    def totals(self) -> TrailerTotals | None:
        """What the trailer lines say (``_split_trailer``: a missing trailer is an error)."""
        if self.profile.trailer is None:
            return None
        lines = pd.concat(self.lines) if self.lines else pd.DataFrame(
            {column: pd.Series([], dtype=object) for column in self.profile.columns.values()})
        return _split_trailer(lines, self.profile, self.name)[1]


def _split_trailer(table: pd.DataFrame, profile: ReportFormat, name: str) -> tuple[pd.DataFrame, TrailerTotals | None]:
    """The data rows, and the totals of the declared trailer line(s) that end the file."""
    spec = profile.trailer
    if spec is None:
        return table, None
    marker_column = profile.columns[spec.marker_field]
    is_trailer = _equal(table[marker_column], spec.marker)
    if not is_trailer.any():
        raise ReportFileError(f"{name}: the declared trailer line ('{spec.marker}' in column {marker_column}) is missing")
    first = int(np.argmax(is_trailer))
    if not is_trailer[first:].all():
        raise ReportFileError(f"{name}: row {int(table.index[first])}: the trailer line is not at the end of the file")
    lines = table.iloc[first:]
    count: int | None = None
    if spec.count_field is not None:
        counts = lines[profile.columns[spec.count_field]].str.strip()
        if not counts.str.fullmatch(r"\d{1,12}").all():
            bad = counts[~counts.str.fullmatch(r"\d{1,12}")]
            raise ReportFileError(f"{name}: row {int(bad.index[0])}: trailer count {bad.iloc[0][:40]!r} is not a number")
        count = int(counts.astype("int64").sum())
    totals = _trailer_totals(lines, profile, name) if spec.amount_field is not None else {}
    return table.iloc[:first], TrailerTotals(count, totals, int(lines.index[0]))


def _trailer_totals(lines: pd.DataFrame, profile: ReportFormat, name: str) -> dict[str, int]:
    assert profile.trailer is not None and profile.trailer.amount_field is not None
    amounts = lines[profile.columns[profile.trailer.amount_field]].astype(object)
    codes = lines[profile.columns["currency"]].astype(object).str.strip().str.upper()
    given = ((amounts.str.strip() != "") | (codes != "")).to_numpy()
    exponents = codes.map(_EXPONENTS).fillna(-1).to_numpy(dtype="int64")
    minor, reasons = parse_amounts(amounts, codes, exponents, profile, allow_zero=True, limit_minor=10**18)
    bad = given & ((reasons != "") | (exponents < 0))
    if bad.any():
        at = int(np.argmax(bad))
        raise ReportFileError(f"{name}: row {int(lines.index[at])}: the trailer total "
                              f"{amounts.iloc[at][:40]!r} {codes.iloc[at][:8]!r} cannot be read")
    totals: dict[str, int] = {}
    for code, amount in zip(codes[given], minor[given]):  # a handful of trailer lines, not rows
        totals[code] = totals.get(code, 0) + int(amount)
    return totals


def _read_codes(raw: pd.Series, table: dict[str, str], *, upper: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(each row's index into the distinct values of ``raw``, the canonical code of each distinct value
    or NaN if ``table`` has none): the stripping and lookup are done once per distinct value."""
    positions, uniques = pd.factorize(raw.to_numpy(dtype=object))
    cleaned = pd.Series(uniques, dtype=object).str.strip()
    return positions, (cleaned.str.upper() if upper else cleaned).map(table).to_numpy(dtype=object)


def _blank(cells: pd.Series) -> np.ndarray:
    """Which cells are empty or only whitespace; ``str.isspace`` runs only if some cell holds whitespace."""
    blank = _equal(cells, "")
    if has_match(cells, _WHITESPACE):
        blank = blank | cells.str.isspace().to_numpy(dtype=bool)
    return blank


def _check_ids(cells: dict[str, pd.Series], problems: Problems, profile: ReportFormat, longest_line: int,
               has_nul: bool) -> None:
    """Flag cells that are too long, empty required ids, and ids holding a NUL."""
    column = profile.columns
    if longest_line > MAX_FIELD_CHARS:  # else no cell can be that long: skip the scan
        for field, raw in cells.items():
            problems.flag(raw.str.len() > MAX_FIELD_CHARS, raw, column[field], f"longer than {MAX_FIELD_CHARS} characters")
    for field in ("provider_tx_id", "player_id"):
        problems.flag(_blank(cells[field]), cells[field], column[field], "empty")
    for field in ("provider_tx_id", "reference", "player_id") if has_nul else ():
        if field in cells:  # a NUL (read as U+FFFD, see _utf8_content) is no part of an id
            problems.flag(cells[field].str.contains(_NUL, regex=True), cells[field], column[field], "NUL in an id")


def _validate(table: pd.DataFrame, profile: ReportFormat, longest_line: int, *, has_nul: bool = False,
              ) -> tuple[pd.DataFrame, Problems]:
    """The canonical rows of the readable lines, and the problems of the others (``has_nul``: the
    file held a NUL or U+FFFD, so ids are scanned for one)."""
    problems = Problems(table.index.to_numpy(dtype="int64"), MAX_FIELD_CHARS)
    if table.empty:
        return empty_frame(), problems
    column = profile.columns
    # copy=False: the Series share the parsed columns (pandas 3 would copy each by default).
    cells = {f: pd.Series(table[column[f]].to_numpy(dtype=object), dtype=object, copy=False)
             for f in profile.mapped_fields()}
    _check_ids(cells, problems, profile, longest_line, has_nul)
    directions = {code: _DIRECTIONS[canonical] for code, canonical in profile.codes_of(TYPE_VALUES).items()}
    coded = {"direction": _read_codes(cells["type"], directions),
             "status": _read_codes(cells["status"], profile.codes_of(STATUS_VALUES)),
             "currency": _read_codes(cells["currency"], _CURRENCY_CODES, upper=True)}
    for field, raw_field, reason in (("direction", "type", "unknown type code"), ("status", "status", "unknown status code")):
        positions, distinct = coded[field]
        problems.flag(pd.isna(distinct)[positions], cells[raw_field], column[raw_field], reason)
    positions, distinct = coded["currency"]
    exponents = pd.Series(distinct, dtype=object).map(_EXPONENTS).fillna(-1).to_numpy(dtype="int64")[positions]
    problems.flag(exponents < 0, cells["currency"], column["currency"], "unknown currency")
    codes = pd.Series(distinct[positions], dtype=object, copy=False)
    minor, reasons = parse_amounts(cells["amount"], codes, exponents, profile, allow_zero=False, limit_minor=MAX_AMOUNT_MINOR)
    problems.flag((reasons != "") & (exponents >= 0), cells["amount"], column["amount"], reasons)
    positions, times, reasons = parse_times(cells["created_at"], profile)
    unreadable = (reasons != "")[positions]
    problems.flag(unreadable, cells["created_at"], column["created_at"], reasons[positions] if unreadable.any() else "")
    return _canonical_rows(cells, coded, minor, times.take(positions), problems), problems


def _canonical_rows(cells: dict[str, pd.Series], coded: dict[str, tuple[np.ndarray, np.ndarray]], minor: np.ndarray,
                    created: pd.api.extensions.ExtensionArray, problems: Problems) -> pd.DataFrame:
    """The canonical frame of the rows without a problem."""
    ok = ~problems.bad
    everything = bool(ok.all())
    def pick(values: np.ndarray | pd.Series) -> np.ndarray:  # a fresh array either way
        array = np.asarray(values)
        return array.copy() if everything else array[ok]
    def from_codes(field: str) -> pd.arrays.StringArray:  # the distinct values as text, spread to the rows
        positions, distinct = coded[field]
        return pd.array(distinct, dtype="string").take(pick(positions))
    row_numbers = pick(problems.row_numbers)
    return pd.DataFrame({
        "row_number": row_numbers,
        "provider_tx_id": _text(pick(cells["provider_tx_id"])),
        "reference": _text(pick(cells["reference"]), empty_is_na=True),
        "player_id": _text(pick(cells["player_id"])),
        "direction": from_codes("direction"),
        "amount_minor": pick(minor).astype("int64", copy=False),
        "currency": from_codes("currency"),
        "status": from_codes("status"),
        "created_at": created if everything else created[ok],
        "provider_session_id": _optional_text(cells, "provider_session_id", pick, len(row_numbers)),
        "provider_round_id": _optional_text(cells, "provider_round_id", pick, len(row_numbers)),
    }, copy=False)  # every column is a fresh array already: pandas 3 would copy each once more


def _text(values: np.ndarray, *, empty_is_na: bool = False) -> pd.arrays.StringArray:
    """Text cells as a ``string`` array (with <NA> for the empty ones if ``empty_is_na``); it takes
    ``values`` over (a fresh array of ``pick``) instead of copying it."""
    array = np.asarray(values, dtype=object)
    if empty_is_na:
        array[array == ""] = None
    return pd.array(array, dtype="string", copy=False)


def _optional_text(
    cells: dict[str, pd.Series], field: str, pick: Callable[[np.ndarray | pd.Series], np.ndarray], rows: int,
) -> pd.arrays.StringArray:
    if field in cells:
        return _text(pick(cells[field]), empty_is_na=True)
    return pd.array(np.full(rows, None, dtype=object), dtype="string", copy=False)  # the column is not in the file: NA
