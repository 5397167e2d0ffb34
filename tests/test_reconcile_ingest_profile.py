"""Report profiles in the providers TOML: defaults, every key, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfer_wallet.config import ReportFormat as ReExported
from transfer_wallet.config import load_providers
from transfer_wallet.errors import ConfigError
from transfer_wallet.reconcile.profile import ReportFormat, TrailerSpec, parse_report_format


def test_an_empty_table_gives_the_documented_defaults() -> None:
    fmt = parse_report_format("acme", {})
    assert ReExported is ReportFormat
    assert (fmt.delimiter, fmt.decimal_separator, fmt.thousands_separator, fmt.amount_scale) == (",", ".", None, 1)
    assert (fmt.encoding, fmt.bom, fmt.timezone, fmt.skip_footer_rows, fmt.trailer) == ("utf-8", False, "UTC", 0, None)
    assert (fmt.match_window_s, fmt.cutoff_margin_s) == (900, 3600)
    assert fmt.columns["amount"] == "amount" and fmt.values["SUCCESS"] == ("SUCCESS",)
    assert fmt.mapped_fields()[-1] == "created_at"


def test_every_key_is_read() -> None:
    fmt = parse_report_format("betsul", {
        "delimiter": ";", "decimal_separator": ",", "thousands_separator": ".", "amount_scale": 100,
        "date_format": "%d/%m/%Y %H:%M", "timezone": "America/Sao_Paulo", "encoding": "latin-1", "skip_footer_rows": 1,
        "match_window_s": 600, "cutoff_margin_s": 7200,
        "columns": {"amount": "valor", "provider_round_id": "rodada"},
        "values": {"SUCCESS": ["APROVADO", "CONCLUIDO"], "FAILED": "RECUSADO"},
        "trailer": {"marker": "TOTAL", "count_field": "player_id"},
    })
    assert (fmt.thousands_separator, fmt.amount_scale, fmt.encoding, fmt.skip_footer_rows) == (".", 100, "latin-1", 1)
    assert (fmt.match_window_s, fmt.cutoff_margin_s) == (600, 7200)
    assert fmt.values["SUCCESS"] == ("APROVADO", "CONCLUIDO") and fmt.code("SUCCESS") == "APROVADO"
    assert fmt.codes_of(("SUCCESS", "FAILED")) == {"APROVADO": "SUCCESS", "CONCLUIDO": "SUCCESS", "RECUSADO": "FAILED"}
    assert fmt.mapped_fields()[-1] == "provider_round_id"
    assert fmt.trailer == TrailerSpec(marker="TOTAL", marker_field="provider_tx_id", count_field="player_id", amount_field="amount")


def test_a_profile_built_in_code_fills_the_same_defaults() -> None:
    fmt = ReportFormat(columns={"amount": "valor"}, values={"SUCCESS": "OK"})
    assert fmt.columns["player_id"] == "player_id" and fmt.code("SUCCESS") == "OK" and fmt.code("FAILED") == "FAILED"


@pytest.mark.parametrize(("raw", "message"), [
    ({"delimiter": ";;"}, "'delimiter' must be one character"),
    ({"delimiter": '"'}, "'delimiter' must be one character"),
    ({"decimal_separator": "·"}, "'decimal_separator' must be '.' or ','"),
    ({"delimiter": ",", "decimal_separator": ","}, "'decimal_separator' and 'delimiter' must differ"),
    ({"thousands_separator": "x"}, "'thousands_separator' must be one of"),
    ({"thousands_separator": "."}, "'thousands_separator' must differ"),
    ({"amount_scale": 50}, "'amount_scale' must be a power of ten"),
    ({"amount_scale": 0}, "'amount_scale' must be a power of ten"),
    ({"amount_scale": 1.0}, "'amount_scale' has the wrong type (float)"),
    ({"amount_scale": True}, "'amount_scale' has the wrong type (bool)"),
    ({"encoding": "klingon-8"}, "unknown 'encoding' 'klingon-8'"),
    ({"encoding": "latin-1", "bom": True}, "'bom' is only for the utf-8 encoding"),
    ({"timezone": "Mars/Olympus"}, "unknown 'timezone' 'Mars/Olympus'"),
    ({"date_format": "%d/%m %H:%M"}, "'date_format' '%d/%m %H:%M' must hold the date and the time to the minute"),
    ({"date_format": "%Y-%m-%d"}, "must hold the date and the time to the minute"),
    ({"date_format": "%Y-%m-%d %Q"}, "'date_format' '%Y-%m-%d %Q' cannot be read back"),
    ({"skip_footer_rows": -1}, "'skip_footer_rows' must be 0 to 100"),
    ({"match_window_s": 0}, "'match_window_s' must be 1 to 86400 seconds"),
    ({"cutoff_margin_s": 90000}, "'cutoff_margin_s' must be 0 to 86400 seconds"),
    ({"colums": {}}, "unknown key(s) ['colums']"),
    ({"columns": {"amout": "x"}}, "columns: unknown canonical field(s) ['amout']"),
    ({"columns": {"amount": ""}}, "columns: every entry must be a non-empty string"),
    ({"columns": {"amount": "player_id"}}, "two canonical fields map to the same column"),
    ({"values": {"PENDING": "P"}}, "values: unknown canonical value(s) ['PENDING']"),
    ({"values": {"SUCCESS": []}}, "values.SUCCESS: a non-empty code or a non-empty list of codes"),
    ({"values": {"SUCCESS": ["OK", 1]}}, "values.SUCCESS: a non-empty code"),
    ({"values": {"SUCCESS": ["OK"], "FAILED": ["KO", "OK"]}}, "one code means two of SUCCESS, FAILED"),
    ({"trailer": {"count_field": "player_id"}}, "trailer: 'marker' must be a non-empty string"),
    ({"trailer": {"marker": "T", "count_field": "nope"}}, "trailer: 'count_field' must be a mapped canonical field"),
    ({"trailer": {"marker": "T", "count_field": "provider_round_id"}}, "trailer: 'count_field' must be a mapped"),
    ({"trailer": {"marker": "T", "count_field": "amount"}}, "must be different fields"),
    ({"trailer": {"marker": "T", "sum": "amount"}}, "trailer: unknown key(s) ['sum']"),
])
def test_a_bad_profile_is_a_one_line_config_error_naming_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_report_format("acme", raw)
    assert str(caught.value).startswith("providers.acme.report")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_providers_file_names_itself_in_a_report_error(tmp_path: Path) -> None:
    file = tmp_path / "providers.toml"
    file.write_text('[providers.acme]\nbase_url = "http://127.0.0.1:1"\ncurrency = "EUR"\n'
                    '[providers.acme.report]\namount_scale = 7\n')
    with pytest.raises(ConfigError, match=r"providers.toml: providers.acme.report: 'amount_scale' must be a power of ten"):
        load_providers(file)
