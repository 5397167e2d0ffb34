"""The report file as lines, for ``ingest``: its longest line, the text of lines with too many
fields, and its cut into parts of whole lines (read one part at a time).

A part is at most about ``PART_BYTES`` of whole lines: pandas holds every cell of the part as a
Python string (some 60 bytes each, eight a row), so a whole 5-million-row file read at once held
gigabytes; a part holds a few hundred thousand rows at a time. A file is cut only where a line
is a row: no quote character in it (a quoted field may hold a line break) and every CR followed
by an LF (pandas also ends a line at a lone CR).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transfer_wallet.reconcile.frame import INVALID_COLUMNS

#: A cell longer than this is invalid (and its raw value is cut to this length).
MAX_FIELD_CHARS = 256
#: About how many bytes of whole lines one part of a large file holds.
PART_BYTES = 8 << 20
_SCAN_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Part:
    """Whole lines ``content[start:end]``; the first is line ``first_line`` of the file (header = 1)."""

    start: int
    end: int
    first_line: int


def parts(content: bytes, size: int) -> list[Part]:
    """``content`` (a header line, then rows; it ends with a newline) cut into parts of whole lines of about
    ``size`` bytes; ``[]`` when it cannot be cut safely or the header is the only line."""
    if b'"' in content or content.count(b"\r") != content.count(b"\r\n"):
        return []
    start, line, found = content.find(b"\n") + 1, 2, []
    while 0 < start < len(content):
        cut = content.find(b"\n", start + size)
        end = len(content) if cut < 0 else cut + 1
        found.append(Part(start, end, line))
        line += content.count(b"\n", start, end)
        start = end
    return found


def longest_line(content: bytes) -> int:
    """The longest line in bytes, its newline included (vectorised, over slices of the buffer: a mask
    of the whole file would be as large as the file)."""
    buffer = np.frombuffer(content, dtype=np.uint8)
    longest, previous_end = 0, -1
    for first in range(0, len(buffer), _SCAN_BYTES):
        ends = first + np.flatnonzero(buffer[first:first + _SCAN_BYTES] == ord("\n"))
        if len(ends):
            longest = max(longest, int(np.diff(ends, prepend=previous_end).max()))
            previous_end = int(ends[-1])
    return longest if previous_end >= 0 else len(content)


def bad_lines(content: bytes, skipped: list[re.Match[str]], delimiter: str) -> pd.DataFrame:
    if not skipped:
        return pd.DataFrame(columns=list(INVALID_COLUMNS))
    found = [(int(m.group(1)), m.group(2), m.group(3)) for m in skipped]
    texts = _record_texts(content, {line for line, _, _ in found}, delimiter)
    return pd.DataFrame({
        "row_number": [line for line, _, _ in found],
        "column": "",
        "raw_value": [texts.get(line, "")[:MAX_FIELD_CHARS] for line, _, _ in found],
        "reason": [f"expected {want} fields, saw {saw}" for _, want, saw in found],
    })


def _record_texts(content: bytes, numbers: set[int], delimiter: str) -> dict[int, str]:
    """The text of each wanted row (row numbers count records, as the parser does: a quoted field
    may span lines). Without a quote in the file a row is a line; else the file is walked once."""
    lines = content.split(b"\n")
    if b'"' not in content:
        return {n: lines[n - 1].rstrip(b"\r").decode("utf-8") for n in numbers if n <= len(lines)}
    texts: dict[int, str] = {}
    reader = csv.reader(io.StringIO(content.decode("utf-8"), newline=""), delimiter=delimiter)
    previous = 0
    for number, _ in enumerate(reader, start=1):  # only when a row had too many fields
        if number in numbers:
            texts[number] = b"\n".join(lines[previous:reader.line_num]).rstrip(b"\r").decode("utf-8")
        previous = reader.line_num
        if len(texts) == len(numbers):
            break
    return texts
