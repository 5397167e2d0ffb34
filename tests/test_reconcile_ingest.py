"""Reading provider reports: each format option, bad files, and invalid rows with their row numbers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from transfer_wallet.config import load_providers
from transfer_wallet.errors import ValidationError
from transfer_wallet.reconcile.frame import CANONICAL_DTYPES, INVALID_COLUMNS
from transfer_wallet.reconcile.ingest import ReportFileError, ingest_report
from transfer_wallet.reconcile.profile import ReportFormat, parse_report_format

SAMPLE_PROVIDERS = Path(__file__).resolve().parents[1] / "sample_data" / "providers.toml"
HEADER = "tx_id,ref,player,dir,amount,ccy,status,at"
COLUMNS = {"provider_tx_id": "tx_id", "reference": "ref", "player_id": "player", "type": "dir",
           "currency": "ccy", "created_at": "at"}


def profile(**overrides: object) -> ReportFormat:
    """A profile through the config parser: the short test columns, plus ``overrides``."""
    raw: dict = {"columns": dict(COLUMNS), "values": {"TRANSFER_IN": "IN", "TRANSFER_OUT": "OUT"}, **overrides}
    return parse_report_format("test", raw)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def one_row(report_text: str, fmt: ReportFormat, encoding: str = "utf-8") -> dict:
    report = ingest_report(report_text.encode(encoding), fmt)
    assert report.invalid.empty, report.invalid.to_dict("records")
    assert len(report.rows) == 1
    return report.rows.iloc[0].to_dict()


def problems(report_text: str, fmt: ReportFormat | None = None) -> list[tuple[int, str, str, str]]:
    report = ingest_report(report_text.encode(), fmt or profile())
    return [tuple(r) for r in report.invalid.itertuples(index=False)]  # type: ignore[misc]


# --- the canonical frame -------------------------------------------------------------------------

def test_a_plain_report_becomes_the_canonical_frame_with_exact_minor_units_and_utc_times() -> None:
    report = ingest_report(
        f"{HEADER}\nt1,tr-1,P1,IN,12.50,EUR,SUCCESS,2026-11-24T09:30:00\nt2,,P2,OUT,1000,JPY,FAILED,2026-11-24T10:00:00\n".encode(),
        profile(), name="acme-2026-11-24.csv")
    assert dict(report.rows.dtypes.astype(str)) == CANONICAL_DTYPES
    assert tuple(report.invalid.columns) == INVALID_COLUMNS
    first, second = report.rows.to_dict("records")
    assert (first["row_number"], first["amount_minor"], first["direction"], first["status"]) == (2, 1250, "IN", "SUCCESS")
    assert first["created_at"] == utc("2026-11-24 09:30:00")
    assert pd.isna(second["reference"]) and second["amount_minor"] == 1000 and second["direction"] == "OUT"
    assert pd.isna(first["provider_session_id"]) and report.rows["reference"].isna().tolist() == [False, True]
    assert (report.name, report.data_rows, report.trailer) == ("acme-2026-11-24.csv", 2, None)


def test_the_file_is_identified_by_the_size_and_sha256_of_its_raw_bytes(tmp_path: Path) -> None:
    body = f"\ufeff{HEADER}\nt1,tr-1,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00\n".encode()
    path = tmp_path / "r.csv"
    path.write_bytes(body)
    report = ingest_report(path, profile())
    assert (report.name, report.size_bytes) == ("r.csv", len(body))
    assert report.sha256 == "%064x" % int.from_bytes(__import__("hashlib").sha256(body).digest(), "big")
    assert ingest_report(str(path), profile()).sha256 == report.sha256


# --- format variants -------------------------------------------------------------------------------

def test_a_sao_paulo_day_crosses_utc_midnight() -> None:
    fmt = profile(timezone="America/Sao_Paulo", date_format="%d/%m/%Y %H:%M:%S")
    row = one_row(f"{HEADER}\nt1,tr-1,P1,IN,5.00,BRL,SUCCESS,24/11/2026 22:30:00\n", fmt)
    assert row["created_at"] == utc("2026-11-25 01:30:00")  # still the 24th in Sao Paulo


def test_on_the_dst_day_the_repeated_hour_is_the_earliest_instant_and_the_skipped_hour_is_invalid() -> None:
    fmt = profile(timezone="Europe/Malta", date_format="%Y-%m-%d %H:%M")
    text = (f"{HEADER}\n"
            "t1,tr-1,P1,IN,1.00,EUR,SUCCESS,2026-10-25 02:30\n"  # clocks go back at 03:00: 02:30 happens twice
            "t2,tr-2,P1,IN,1.00,EUR,SUCCESS,2026-03-29 02:30\n"  # clocks go forward at 02:00: 02:30 never happens
            "t3,tr-3,P1,IN,1.00,EUR,SUCCESS,2026-10-25 03:30\n")
    report = ingest_report(text.encode(), fmt)
    assert report.rows["created_at"].tolist() == [utc("2026-10-25 00:30"), utc("2026-10-25 02:30")]
    assert problems(text, fmt) == [(3, "at", "2026-03-29 02:30", "local time does not exist in Europe/Malta (DST gap)")]


def test_decimal_comma_with_thousands_dot() -> None:
    fmt = profile(delimiter=";", decimal_separator=",", thousands_separator=".")
    text = f"{HEADER.replace(',', ';')}\nt1;tr-1;P1;IN;1.234.567,89;EUR;SUCCESS;2026-11-24T09:30:00\n"
    assert one_row(text, fmt)["amount_minor"] == 123456789
    assert one_row(text.replace("1.234.567,89", "1234567,89"), fmt)["amount_minor"] == 123456789
    bad = text.replace("1.234.567,89", "1.23.567,89")
    assert problems(bad, fmt) == [(2, "amount", "1.23.567,89", "not an amount")]


def test_integer_cents_and_other_powers_of_ten() -> None:
    text = f"{HEADER}\nt1,tr-1,P1,IN,1250,EUR,SUCCESS,2026-11-24T09:30:00\n"
    assert one_row(text, profile(amount_scale=100))["amount_minor"] == 1250
    assert one_row(text.replace("EUR", "JPY"), profile(amount_scale=10))["amount_minor"] == 125
    assert one_row(text.replace("EUR", "KWD"), profile(amount_scale=100))["amount_minor"] == 12500
    assert problems(text.replace("EUR", "JPY"), profile(amount_scale=100)) == [
        (2, "amount", "1250", "more decimals than JPY allows")]  # 12.50 yen
    assert problems(text.replace("1250", "12.5"), profile(amount_scale=100)) == [
        (2, "amount", "12.5", "more decimals than EUR allows")]


def test_day_first_dates() -> None:
    row = one_row(f"{HEADER}\nt1,tr-1,P1,IN,1.00,EUR,SUCCESS,03/04/2026 05:06:07\n", profile(date_format="%d/%m/%Y %H:%M:%S"))
    assert row["created_at"] == utc("2026-04-03 05:06:07")


def test_latin_1_text_is_decoded_with_the_declared_encoding() -> None:
    fmt = profile(encoding="latin-1", columns={**COLUMNS, "player_id": "jogador_ç"})
    text = f"{HEADER.replace('player', 'jogador_ç')}\nt1,tr-1,João,IN,1.00,BRL,SUCCESS,2026-11-24T09:30:00\n"
    assert one_row(text, fmt, encoding="latin-1")["player_id"] == "João"


def test_a_utf8_bom_is_accepted_whatever_the_declared_encoding() -> None:
    text = f"\ufeff{HEADER}\nt1,tr-1,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00\n"
    assert one_row(text, profile())["provider_tx_id"] == "t1"
    assert one_row(text, profile(encoding="latin-1"))["provider_tx_id"] == "t1"


def test_a_trailer_line_gives_the_declared_count_and_totals_per_currency() -> None:
    fmt = profile(trailer={"marker": "TOTAL", "count_field": "reference"})
    text = (f"{HEADER}\nt1,tr-1,P1,IN,1.50,EUR,SUCCESS,2026-11-24T09:30:00\nt2,tr-2,P1,IN,700,JPY,FAILED,2026-11-24T09:30:00\n"
            "t3,tr-3,P1,OUT,2.00,EUR,SUCCESS,2026-11-24T09:30:00\nTOTAL,2,,,3.50,EUR,,\nTOTAL,1,,,700,JPY,,\n")
    report = ingest_report(text.encode(), fmt)
    assert len(report.rows) == 3 and report.invalid.empty and report.data_rows == 3
    assert report.trailer is not None
    assert (report.trailer.row_count, report.trailer.amount_minor_by_currency, report.trailer.row_number) == (
        3, {"EUR": 350, "JPY": 700}, 5)


def test_a_declared_trailer_that_is_missing_or_not_last_makes_the_file_unreadable() -> None:
    fmt = profile(trailer={"marker": "TOTAL", "count_field": "reference"})
    row = "t1,tr-1,P1,IN,1.50,EUR,SUCCESS,2026-11-24T09:30:00\n"
    with pytest.raises(ReportFileError, match="trailer line .* is missing"):
        ingest_report(f"{HEADER}\n{row}".encode(), fmt)
    with pytest.raises(ReportFileError, match="row 2: the trailer line is not at the end"):
        ingest_report(f"{HEADER}\nTOTAL,1,,,1.50,EUR,,\n{row}".encode(), fmt)
    with pytest.raises(ReportFileError, match="row 3: trailer count 'one' is not a number"):
        ingest_report(f"{HEADER}\n{row}TOTAL,one,,,1.50,EUR,,\n".encode(), fmt)


def test_footer_rows_are_skipped_unread() -> None:
    text = f"{HEADER}\nt1,tr-1,P1,IN,1.50,EUR,SUCCESS,2026-11-24T09:30:00\nEND OF REPORT\ngenerated by X;;;\n\n"
    report = ingest_report(text.encode(), profile(skip_footer_rows=2))
    assert report.rows["provider_tx_id"].tolist() == ["t1"] and report.invalid.empty


def test_extra_and_reordered_columns_are_fine() -> None:
    text = "at,comment,status,ccy,amount,dir,player,ref,tx_id,x\n2026-11-24T09:30:00,hi,SUCCESS,EUR,9.99,OUT,P7,tr-9,t9,y\n"
    row = one_row(text, profile())
    assert (row["provider_tx_id"], row["player_id"], row["amount_minor"], row["direction"]) == ("t9", "P7", 999, "OUT")


def test_several_codes_map_to_one_canonical_value() -> None:
    fmt = profile(values={"SUCCESS": ["OK", "COMPLETED"], "FAILED": "KO", "TRANSFER_IN": ["IN", "DEP"]})
    text = (f"{HEADER}\nt1,tr-1,P1,DEP,1.00,EUR,OK,2026-11-24T09:30:00\nt2,tr-2,P1,IN,1.00,EUR,COMPLETED,2026-11-24T09:30:00\n"
            "t3,tr-3,P1,TRANSFER_OUT,1.00,EUR,KO,2026-11-24T09:30:00\n")
    report = ingest_report(text.encode(), fmt)
    assert report.rows["status"].tolist() == ["SUCCESS", "SUCCESS", "FAILED"]
    assert report.rows["direction"].tolist() == ["IN", "IN", "OUT"]
    assert fmt.code("SUCCESS") == "OK"


def test_optional_session_and_round_columns_are_read_when_mapped() -> None:
    fmt = profile(columns={**COLUMNS, "provider_session_id": "session", "provider_round_id": "round"})
    text = f"{HEADER},session,round\nt1,tr-1,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00,S1,\n"
    row = one_row(text, fmt)
    assert row["provider_session_id"] == "S1" and pd.isna(row["provider_round_id"])


def test_the_sample_providers_read_their_own_formats() -> None:
    providers = load_providers(SAMPLE_PROVIDERS)
    betsul = ("id_transacao;referencia_operador;jogador;tipo;valor;moeda;situação;data_hora;sessao\n"
              "b1;tr-a;P1;DEPOSITO;1.234,56;BRL;CONCLUIDO;24/11/2026 22:30:00;S9\nTOTAL;1;;;1.234,56;BRL;;;\n")
    report = ingest_report(betsul.encode("latin-1"), providers["betsul"].report)
    assert report.rows[["amount_minor", "status", "provider_session_id"]].values.tolist() == [[123456, "SUCCESS", "S9"]]
    assert report.rows["created_at"].tolist() == [utc("2026-11-25 01:30:00")]
    assert report.trailer is not None and report.trailer.amount_minor_by_currency == {"BRL": 123456}
    acme = ("tx_id,operator_ref,player,direction,amount,currency,status,created_at_utc\n"
            "a1,tr-1,P1,IN,12.50,EUR,COMPLETED,2026-11-24T00:00:00\n")
    assert one_row(acme, providers["acme"].report)["amount_minor"] == 1250


# --- bad files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"", b"\n\n", b"\xef\xbb\xbf", b"   \r\n"])
def test_an_empty_file_is_unreadable(body: bytes) -> None:
    with pytest.raises(ReportFileError, match="the file is empty"):
        ingest_report(body, profile())


def test_a_header_only_file_is_zero_rows_not_an_error() -> None:
    report = ingest_report(f"{HEADER}\n".encode(), profile())
    assert (len(report.rows), len(report.invalid), report.data_rows) == (0, 0, 0)
    assert dict(report.rows.dtypes.astype(str)) == CANONICAL_DTYPES


def test_wrong_columns_name_the_missing_ones_and_a_file_without_header_says_so() -> None:
    with pytest.raises(ReportFileError, match=r"required column\(s\) missing from the header: amount, at$"):
        ingest_report(b"tx_id,ref,player,dir,value,ccy,status,time\n", profile())
    with pytest.raises(ReportFileError, match="no header row"):
        ingest_report(b"t1,tr-1,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00\n", profile())
    with pytest.raises(ReportFileError, match="named twice in the header: amount"):
        ingest_report(f"{HEADER},amount\n".encode(), profile())


def test_undecodable_bytes_name_the_line_and_the_encoding() -> None:
    body = f"{HEADER}\nt1,tr-1,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00\n".encode() + b"t2,tr-2,P\xe7,IN,1.00,EUR,SUCCESS,x\n"
    with pytest.raises(ReportFileError, match="line 3 is not valid utf-8") as caught:
        ingest_report(body, profile())
    assert isinstance(caught.value, ValidationError) and "\n" not in str(caught.value)


def test_a_very_long_line_is_an_invalid_row_not_a_hang() -> None:
    huge = "9" * 5_000_000
    text = f"{HEADER}\nt1,tr-1,P1,IN,{huge},EUR,SUCCESS,2026-11-24T09:30:00\nt2,tr-2,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00\n"
    report = ingest_report(text.encode(), profile())
    assert report.rows["provider_tx_id"].tolist() == ["t2"]
    (row_number, column, raw_value, reason), = report.invalid.itertuples(index=False)
    assert (row_number, column, len(raw_value), reason) == (2, "amount", 256, "longer than 256 characters")
    with pytest.raises(ReportFileError, match="first line is longer than 65536 bytes"):
        ingest_report(("x" * 100_000 + "\n").encode(), profile())


def test_an_unclosed_quote_makes_the_file_unreadable_in_one_line() -> None:
    with pytest.raises(ReportFileError, match="not readable as CSV") as caught:
        ingest_report(f'{HEADER}\nt1,"tr-1,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00\n'.encode(), profile())
    assert "\n" not in str(caught.value)


def test_a_formula_in_a_player_id_is_kept_verbatim() -> None:
    row = one_row(f'{HEADER}\nt1,tr-1,"=HYPERLINK(""http://x"",""y"")",IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00\n', profile())
    assert row["player_id"] == '=HYPERLINK("http://x","y")'


def test_a_missing_file_is_a_report_file_error(tmp_path: Path) -> None:
    with pytest.raises(ReportFileError, match="cannot read report"):
        ingest_report(tmp_path / "nope.csv", profile())


# --- invalid rows: each reason with its row number, column and raw value ----------------------------

GOOD = "t{n},tr-{n},P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00"


@pytest.mark.parametrize(("row", "expected"), [
    ("tx,tr,P1,IN,-5.00,EUR,SUCCESS,2026-11-24T09:30:00", ("amount", "-5.00", "negative amount")),
    ("tx,tr,P1,IN,0.00,EUR,SUCCESS,2026-11-24T09:30:00", ("amount", "0.00", "amount must be positive")),
    ("tx,tr,P1,IN,1.005,EUR,SUCCESS,2026-11-24T09:30:00", ("amount", "1.005", "more decimals than EUR allows")),
    ("tx,tr,P1,IN,1.5,JPY,SUCCESS,2026-11-24T09:30:00", ("amount", "1.5", "more decimals than JPY allows")),
    ("tx,tr,P1,IN,12.50.1,EUR,SUCCESS,2026-11-24T09:30:00", ("amount", "12.50.1", "not an amount")),
    ("tx,tr,P1,IN,1e3,EUR,SUCCESS,2026-11-24T09:30:00", ("amount", "1e3", "not an amount")),
    ("tx,tr,P1,IN,NaN,EUR,SUCCESS,2026-11-24T09:30:00", ("amount", "NaN", "not an amount")),
    ("tx,tr,P1,IN,,EUR,SUCCESS,2026-11-24T09:30:00", ("amount", "", "empty")),
    ("tx,tr,P1,IN,99999999999999.00,EUR,SUCCESS,2026-11-24T09:30:00", ("amount", "99999999999999.00", "amount too large")),
    ("tx,tr,P1,IN,1" + "0" * 30 + ",EUR,SUCCESS,2026-11-24T09:30:00", ("amount", "1" + "0" * 30, "amount too large")),
    ("tx,tr,P1,IN,1.00,EUX,SUCCESS,2026-11-24T09:30:00", ("ccy", "EUX", "unknown currency")),
    ("tx,tr,P1,IN,1.00,XAU,SUCCESS,2026-11-24T09:30:00", ("ccy", "XAU", "unknown currency")),
    ("tx,tr,P1,BET,1.00,EUR,SUCCESS,2026-11-24T09:30:00", ("dir", "BET", "unknown type code")),
    ("tx,tr,P1,IN,1.00,EUR,PENDING,2026-11-24T09:30:00", ("status", "PENDING", "unknown status code")),
    ("tx,tr,P1,IN,1.00,EUR,SUCCESS,24/11/2026 09:30", ("at", "24/11/2026 09:30", "not a date in the format %Y-%m-%dT%H:%M:%S")),
    ("tx,tr,P1,IN,1.00,EUR,SUCCESS,2026-02-30T09:30:00", ("at", "2026-02-30T09:30:00", "not a date in the format %Y-%m-%dT%H:%M:%S")),
    ("tx,tr,P1,IN,1.00,EUR,SUCCESS,1900-01-01T00:00:00", ("at", "1900-01-01T00:00:00", "date out of range")),
    (",tr,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00", ("tx_id", "", "empty")),
    ("tx,tr,  ,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00", ("player", "  ", "empty")),
    ("tx,tr,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00,surplus", ("", "tx,tr,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00,surplus",
                                                                   "expected 8 fields, saw 9")),
])
def test_an_unreadable_row_is_reported_with_its_row_column_raw_value_and_reason(row: str, expected: tuple) -> None:
    text = "\n".join([HEADER, GOOD.format(n=1), "", row, GOOD.format(n=2)]) + "\n"
    report = ingest_report(text.encode(), profile())
    assert [tuple(r) for r in report.invalid.itertuples(index=False)] == [(4, *expected)]  # blank line 3 still counts
    assert report.rows["row_number"].tolist() == [2, 5]
    assert report.data_rows == 3


def test_a_row_with_several_problems_lists_each_cell_and_is_never_also_a_valid_row() -> None:
    found = problems(f"{HEADER}\n,tr,P1,SIDEWAYS,-1,???,MAYBE,yesterday\n")
    assert [(r, c) for r, c, _, _ in found] == [(2, "tx_id"), (2, "dir"), (2, "status"), (2, "ccy"), (2, "at")]
    assert ingest_report(f"{HEADER}\n,tr,P1,SIDEWAYS,-1,???,MAYBE,yesterday\n".encode(), profile()).rows.empty


def test_padded_amounts_codes_and_dates_and_lower_case_currencies_are_read() -> None:
    row = one_row(f"{HEADER}\nt1,tr-1,P1, OUT , 1.00 , eur ,SUCCESS , 2026-11-24T09:30:00 \n", profile())
    assert (row["direction"], row["amount_minor"], row["currency"], row["status"]) == ("OUT", 100, "EUR", "SUCCESS")
    assert row["created_at"] == utc("2026-11-24 09:30:00")


def test_many_rows_keep_their_own_row_numbers_and_amounts_across_parse_chunks() -> None:
    lines = [f"t{i},tr-{i},P1,IN,{i // 100}.{i % 100:02d},EUR,SUCCESS,2026-11-24T09:30:00" for i in range(1, 250_001)]
    lines[180_000] = lines[180_000].replace(",EUR,", ",ZZZ,")  # row 180,002 of the file
    report = ingest_report(("\n".join([HEADER, *lines]) + "\n").encode(), profile())
    assert report.invalid[["row_number", "column", "raw_value"]].values.tolist() == [[180_002, "ccy", "ZZZ"]]
    assert len(report.rows) == 249_999
    assert report.rows["amount_minor"].sum() == sum(range(1, 250_001)) - 180_001
    assert report.rows.iloc[-1][["row_number", "amount_minor"]].tolist() == [250_001, 250_000]


def test_windows_line_ends_are_read_like_unix_ones() -> None:
    text = f"{HEADER}\r\nt1,tr-1,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00\r\nt2,tr-2,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00,x\r\n"
    report = ingest_report(text.encode(), profile())
    assert report.rows[["row_number", "created_at"]].values.tolist() == [[2, utc("2026-11-24 09:30:00")]]
    assert report.invalid[["row_number", "raw_value"]].values.tolist() == [[3, "t2,tr-2,P1,IN,1.00,EUR,SUCCESS,2026-11-24T09:30:00,x"]]
