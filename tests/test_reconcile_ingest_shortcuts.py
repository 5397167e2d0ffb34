"""The shortcuts that make ingest fast give the answers of the slow, obvious way.

Each shortcut skips work when a cheap scan shows it cannot matter (no whitespace in a
column, no NUL in the amounts, every amount ASCII, a file already ending in one newline);
these stories check the cases where it does matter.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from transfer_wallet.reconcile import ingest, ingest_lines
from transfer_wallet.reconcile.ingest import _WHITESPACE, ingest_report
from transfer_wallet.reconcile.profile import ReportFormat, parse_report_format
from transfer_wallet.reconcile.values import _NUL, has_match, parse_amounts

HEADER = "tx_id,ref,player,dir,amount,ccy,status,at"
ROW = "t1,tr-1,P1,IN,12.50,EUR,SUCCESS,2026-11-24T09:30:00"


def profile(**overrides: object) -> ReportFormat:
    columns = {"provider_tx_id": "tx_id", "reference": "ref", "player_id": "player", "type": "dir",
               "currency": "ccy", "created_at": "at"}
    return parse_report_format("test", {"columns": columns, "values": {"TRANSFER_IN": "IN", "TRANSFER_OUT": "OUT"},
                                        **overrides})


def test_the_whitespace_scan_finds_exactly_the_characters_str_isspace_knows() -> None:
    every = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    assert [c for c in every if _WHITESPACE.search(c)] == [c for c in every if c.isspace()]


def test_has_match_sees_a_character_in_any_cell_and_sets_na_aside() -> None:
    assert has_match(pd.Series(["a", "b c", "d"]), _WHITESPACE)
    assert not has_match(pd.Series(["a", "bc", ""]), _WHITESPACE)
    assert has_match(np.array(["a", pd.NA, "1\x00"], dtype=object), _NUL)
    assert not has_match(np.array([pd.NA, "12.00"], dtype=object), _NUL)


@pytest.mark.parametrize("player", ["\u3000", "\u00a0\t", " "])
def test_a_player_id_of_only_unicode_whitespace_is_empty(player: str) -> None:
    report = ingest_report(f"{HEADER}\n{ROW.replace('P1', player)}\nt2,tr-2,P 2,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00\n"
                           .encode(), profile())
    assert [tuple(r) for r in report.invalid.itertuples(index=False)] == [(2, "player", player, "empty")]
    assert report.rows["player_id"].tolist() == ["P 2"]  # a space inside an id is data


def test_amounts_read_the_same_when_one_cell_is_not_ascii() -> None:
    fmt = profile(delimiter=";", thousands_separator=",", decimal_separator=".")
    texts = ["12.50", "1,234.5", "0.01", "-3.00", "12.505", "", "1,23", "99999999999999999999", "7", " 8.00 "]
    def read(cells: list[str]) -> tuple[list[int], list[str]]:
        exponents = np.full(len(cells), 2, dtype="int64")
        minor, reasons = parse_amounts(pd.Series(cells, dtype=object), pd.Series(["EUR"] * len(cells), dtype=object),
                                       exponents, fmt, allow_zero=False, limit_minor=10**15)
        return minor.tolist(), list(reasons)
    ascii_minor, ascii_reasons = read(texts)
    wide_minor, wide_reasons = read([*texts, "12\u00b750"])  # one non-ASCII cell: the four-byte matrix
    assert (wide_minor[:-1], wide_reasons[:-1]) == (ascii_minor, ascii_reasons)
    assert ascii_minor[:4] == [1250, 123450, 1, 0] and wide_reasons[-1] == "not an amount"


def test_an_amount_holding_a_nul_is_not_an_amount() -> None:
    minor, reasons = parse_amounts(pd.Series(["13.00\x00", "13.00"], dtype=object), pd.Series(["EUR", "EUR"]),
                                   np.array([2, 2]), profile(), allow_zero=False, limit_minor=10**15)
    assert (minor.tolist(), list(reasons)) == ([0, 1300], ["not an amount", ""])


@pytest.mark.parametrize("ending", ["", "\n", "\r\n", "\n\n", "\r\n\r\n", "\n\r\n"])
def test_every_way_a_file_can_end_gives_the_same_rows(ending: str) -> None:
    report = ingest_report(f"{HEADER}\n{ROW}{ending}".encode(), profile())
    assert report.invalid.empty and report.rows["amount_minor"].tolist() == [1250]
    assert report.data_rows == 1


@pytest.mark.parametrize("slice_bytes", [1, 7, 64, 1 << 20])
def test_a_long_cell_is_found_whatever_slice_of_the_file_it_falls_in(
        slice_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_lines, "_SCAN_BYTES", slice_bytes)
    long_id = "x" * 300
    report = ingest_report(f"{HEADER}\n{ROW}\n{ROW.replace('t1', long_id)}\n{ROW.replace('t1', 't3')}\n".encode(), profile())
    assert [tuple(r)[:2] for r in report.invalid.itertuples(index=False)] == [(3, "tx_id")]
    assert report.invalid["reason"].iloc[0] == "longer than 256 characters" and len(report.rows) == 2
