"""A large report is read in parts of whole lines (``ingest_lines.parts``): the same rows, invalid
cells, row numbers and trailer as reading it whole. ``PART_BYTES`` is made tiny so that these small
files are cut into many parts, at every possible place."""

from __future__ import annotations

import pandas as pd
import pytest

from transfer_wallet.reconcile import ingest
from transfer_wallet.reconcile.ingest import ReportFileError, ingest_report
from transfer_wallet.reconcile.ingest_lines import parts
from transfer_wallet.reconcile.profile import ReportFormat, parse_report_format

HEADER = "tx_id,ref,player,dir,amount,ccy,status,at"


def profile(**overrides: object) -> ReportFormat:
    columns = {"provider_tx_id": "tx_id", "reference": "ref", "player_id": "player", "type": "dir",
               "currency": "ccy", "created_at": "at"}
    return parse_report_format("test", {"columns": columns, "values": {"TRANSFER_IN": "IN", "TRANSFER_OUT": "OUT"},
                                        **overrides})


def rows(count: int) -> list[str]:
    """Valid rows, with unreadable ones, a line with too many fields and blank lines among them."""
    lines = []
    for n in range(count):
        amount = "12.3x" if n % 7 == 3 else f"{n + 1}.{n % 100:02d}"
        status = "MAYBE" if n % 11 == 5 else "SUCCESS"
        lines.append(f"t{n},{'' if n % 3 else f'tr-{n}'},P{n % 5},{'IN' if n % 2 else 'OUT'},{amount},"
                     f"{'JPY' if n % 13 == 0 else 'EUR'},{status},2026-11-24T{n % 24:02d}:30:00")
        if n % 17 == 8:
            lines.append(f"x{n},,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00,extra")
        if n % 19 == 4:
            lines.append("")
    return lines


def read_both(text: str, fmt: ReportFormat, monkeypatch: pytest.MonkeyPatch, part_bytes: int) -> tuple:
    whole = ingest_report(text.encode(), fmt)
    monkeypatch.setattr(ingest, "PART_BYTES", part_bytes)
    assert len(parts(text.encode(), part_bytes)) > 3  # really read in parts
    return whole, ingest_report(text.encode(), fmt)


@pytest.mark.parametrize("part_bytes", [1, 40, 113, 500])
@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_a_file_read_in_parts_gives_what_the_whole_file_gives(
        part_bytes: int, ending: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = profile(trailer={"marker": "TOTAL", "count_field": "reference", "amount_field": "amount"})
    text = ending.join([HEADER, *rows(60), "TOTAL,50,,,9.99,EUR,,", "", "TOTAL,3,,,700,JPY,,"]) + ending
    whole, in_parts = read_both(text, fmt, monkeypatch, part_bytes)
    pd.testing.assert_frame_equal(in_parts.rows, whole.rows)
    pd.testing.assert_frame_equal(in_parts.invalid, whole.invalid)
    assert (in_parts.trailer, in_parts.data_rows, in_parts.sha256) == (whole.trailer, whole.data_rows, whole.sha256)
    # what the file holds, so that the comparison above compares something
    assert whole.trailer is not None and whole.trailer.row_count == 53 and whole.trailer.row_number == 69
    reasons = set(whole.invalid["reason"])
    assert {"not an amount", "unknown status code", "expected 8 fields, saw 9"} <= reasons
    assert len(whole.rows) > 30 and whole.rows["row_number"].is_monotonic_increasing


@pytest.mark.parametrize("part_bytes", [1, 90])
def test_a_trailer_not_at_the_end_or_missing_is_found_in_parts_too(part_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = profile(trailer={"marker": "TOTAL", "count_field": "reference"})
    body = rows(20)
    monkeypatch.setattr(ingest, "PART_BYTES", part_bytes)
    misplaced = "\n".join([HEADER, *body[:10], "TOTAL,1,,,1.50,EUR,,", *body[10:]]) + "\n"
    with pytest.raises(ReportFileError, match="row 12: the trailer line is not at the end"):
        ingest_report(misplaced.encode(), fmt)
    with pytest.raises(ReportFileError, match="trailer line .* is missing"):
        ingest_report(("\n".join([HEADER, *body]) + "\n").encode(), fmt)


def test_a_file_is_not_cut_where_a_line_may_not_be_a_row() -> None:
    assert parts(f'{HEADER}\nt1,"a\nb",P1\nt2,,P1\n'.encode(), 1) == []  # a quoted field may hold a line break
    assert parts(f"{HEADER}\nt1,,P1\rt2,,P1\n".encode(), 1) == []  # pandas ends a line at a lone CR
    assert parts(f"{HEADER}\n".encode(), 1) == []
    cut = parts(f"{HEADER}\nt1\nt2\r\nt3\n".replace("\r\n", "\n").encode(), 1)
    assert [(p.first_line) for p in cut] == [2, 3, 4]
