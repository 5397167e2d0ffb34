"""Report ingest profiles: how one provider writes its daily transfer report.

A provider's report format is described entirely by its ``[providers.NAME.report]``
table; a new format is configuration, never code. Every key, with its default::

    [providers.betsul.report]
    delimiter = ";"                    # one character (default ",")
    decimal_separator = ","            # "." or "," (default ".")
    thousands_separator = "."          # one character, or absent for none (default)
    amount_scale = 1                   # 1 = major units (12,50); 100 = integer cents (1250); any power of ten
    date_format = "%d/%m/%Y %H:%M:%S"  # strptime format (default ISO "%Y-%m-%dT%H:%M:%S")
    timezone = "America/Sao_Paulo"     # the zone of the dates, and of the business day (default UTC)
    encoding = "latin-1"               # any Python codec (default utf-8); a UTF-8 BOM is always accepted
    bom = false                        # the simulator writes a UTF-8 BOM (utf-8 only)
    skip_footer_rows = 0               # lines at the end of the file to ignore unread ...
    footer_marker = "END OF REPORT"    # ... the first of which must start with this text (else the file is refused)
    match_window_s = 900               # time window of the player + direction + amount fallback match
    cutoff_margin_s = 3600             # ledger margin read on each side of the business day

    [providers.betsul.report.columns]  # canonical field -> the provider's column name
    provider_tx_id = "id_transacao"    # ... every field of REPORT_FIELDS (default: the field's own name)
    provider_session_id = "sessao"     # optional columns: read only when mapped
    provider_round_id = "rodada"

    [providers.betsul.report.values]   # canonical value -> the provider's code, or several codes
    TRANSFER_IN = "DEPOSITO"
    SUCCESS = ["APROVADO", "CONCLUIDO"]    # the first code is the one the simulator writes

    [providers.betsul.report.trailer]  # optional: a declared total line at the end of the file
    marker = "TOTAL"                   # the text that makes a row the trailer ...
    marker_field = "provider_tx_id"    # ... in this field's column (default provider_tx_id)
    count_field = "player_id"          # the column holding the row count (optional)
    amount_field = "amount"            # the column holding the amount total (optional; currency
                                       # from the currency column; one trailer line per currency)

Every error is a one-line ``ConfigError`` naming the key.
"""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from transfer_wallet.errors import ConfigError

#: Canonical report fields every provider's report maps onto (all required in the file).
REPORT_FIELDS: tuple[str, ...] = (
    "provider_tx_id",
    "reference",
    "player_id",
    "type",
    "amount",
    "currency",
    "status",
    "created_at",
)
#: Canonical fields a profile may map, read only when mapped.
OPTIONAL_REPORT_FIELDS: tuple[str, ...] = ("provider_session_id", "provider_round_id")
#: Canonical value codes of the ``type`` and ``status`` report fields.
TYPE_VALUES: tuple[str, ...] = ("TRANSFER_IN", "TRANSFER_OUT")
STATUS_VALUES: tuple[str, ...] = ("SUCCESS", "FAILED")
REPORT_VALUES: tuple[str, ...] = TYPE_VALUES + STATUS_VALUES

MAX_AMOUNT_SCALE = 10**9
MAX_FOOTER_ROWS = 100
MAX_WINDOW_S = 86_400
_THOUSANDS_ALLOWED = frozenset(".,' _")
_SAMPLE_TIME = dt.datetime(2026, 11, 24, 13, 45, 30)


@dataclass(frozen=True, slots=True)
class TrailerSpec:
    """A declared total line: ``marker`` in ``marker_field``'s column; count and total in theirs."""

    marker: str
    marker_field: str = "provider_tx_id"
    count_field: str | None = None
    amount_field: str | None = "amount"


@dataclass(frozen=True, slots=True)
class ReportFormat:
    """How a provider writes its daily transfer report (CSV); see the module docstring.

    ``columns`` maps canonical fields to file columns (missing required fields
    default to their own name); ``values`` maps canonical values to the tuple of
    codes that mean it (a plain string is one code; a missing value is its own code).
    """

    columns: dict[str, str]
    values: Mapping[str, str | tuple[str, ...]]  # a tuple of codes per value once built
    delimiter: str = ","
    decimal_separator: str = "."
    date_format: str = "%Y-%m-%dT%H:%M:%S"
    timezone: str = "UTC"
    encoding: str = "utf-8"
    bom: bool = False
    thousands_separator: str | None = None
    amount_scale: int = 1
    skip_footer_rows: int = 0
    footer_marker: str = "END OF REPORT"
    trailer: TrailerSpec | None = None
    match_window_s: int = 900
    cutoff_margin_s: int = 3600

    def __post_init__(self) -> None:
        columns = {**{f: f for f in REPORT_FIELDS}, **self.columns}
        values: dict[str, tuple[str, ...]] = {v: (v,) for v in REPORT_VALUES}
        for canonical, codes in self.values.items():
            values[canonical] = (codes,) if isinstance(codes, str) else tuple(codes)
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "values", values)

    @property
    def tzinfo(self) -> ZoneInfo:
        """The report's timezone (dates in the file, and the business day)."""
        return ZoneInfo(self.timezone)

    def code(self, canonical: str) -> str:
        """The first (written) code of a canonical value: ``code("SUCCESS") -> "OK"``."""
        return self.values[canonical][0]

    def codes_of(self, canonicals: tuple[str, ...]) -> dict[str, str]:
        """Every code of ``canonicals`` -> its canonical value (the reader's lookup table)."""
        return {code: canonical for canonical in canonicals for code in tuple(self.values[canonical])}

    def mapped_fields(self) -> tuple[str, ...]:
        """The canonical fields read from the file: the required ones, then the mapped optional ones."""
        return REPORT_FIELDS + tuple(f for f in OPTIONAL_REPORT_FIELDS if f in self.columns)


_T = TypeVar("_T")
_D = TypeVar("_D")


def _get(table: dict[str, Any], key: str, where: str, kind: type[_T], default: _D) -> _T | _D:
    """``table[key]`` checked to be a ``kind`` (a bool is not an int), else ``default``."""
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
        raise ConfigError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    return value


def _parse_columns(raw: dict, where: str) -> dict[str, str]:
    columns = dict(_get(raw, "columns", where, dict, {}))
    unknown = set(columns) - set(REPORT_FIELDS) - set(OPTIONAL_REPORT_FIELDS)
    if unknown:
        raise ConfigError(f"{where}.columns: unknown canonical field(s) {sorted(unknown)}")
    if any(not isinstance(v, str) or not v for v in columns.values()):
        raise ConfigError(f"{where}.columns: every entry must be a non-empty string")
    full = {**{f: f for f in REPORT_FIELDS}, **columns}
    if len(set(full.values())) != len(full):
        raise ConfigError(f"{where}.columns: two canonical fields map to the same column")
    return columns


def _parse_values(raw: dict, where: str) -> dict[str, tuple[str, ...]]:
    table = dict(_get(raw, "values", where, dict, {}))
    unknown = set(table) - set(REPORT_VALUES)
    if unknown:
        raise ConfigError(f"{where}.values: unknown canonical value(s) {sorted(unknown)}")
    values: dict[str, tuple[str, ...]] = {v: (v,) for v in REPORT_VALUES}
    for canonical, codes in table.items():
        listed = [codes] if isinstance(codes, str) else codes
        if not isinstance(listed, list) or not listed or any(not isinstance(c, str) or not c.strip() for c in listed):
            raise ConfigError(f"{where}.values.{canonical}: a non-empty code or a non-empty list of codes")
        values[canonical] = tuple(c.strip() for c in listed)
    for group in (TYPE_VALUES, STATUS_VALUES):
        codes = [c for canonical in group for c in values[canonical]]
        if len(set(codes)) != len(codes):
            raise ConfigError(f"{where}.values: one code means two of {', '.join(group)}")
    return values


def _parse_trailer(raw: dict, where: str, columns: dict[str, str]) -> TrailerSpec | None:
    found = _get(raw, "trailer", where, dict, None)
    if found is None:
        return None
    table: dict = dict(found)
    where = f"{where}.trailer"
    known = {"marker", "marker_field", "count_field", "amount_field"}
    if set(table) - known:
        raise ConfigError(f"{where}: unknown key(s) {sorted(set(table) - known)}")
    marker = _get(table, "marker", where, str, "")
    if not str(marker).strip():
        raise ConfigError(f"{where}: 'marker' must be a non-empty string")
    spec = TrailerSpec(
        marker=str(marker).strip(),
        marker_field=str(_get(table, "marker_field", where, str, "provider_tx_id")),
        count_field=_get(table, "count_field", where, str, None),
        amount_field=_get(table, "amount_field", where, str, "amount"),
    )
    readable = set(REPORT_FIELDS) | set(columns)
    for key in ("marker_field", "count_field", "amount_field"):
        value = getattr(spec, key)
        if value is not None and value not in readable:
            raise ConfigError(f"{where}: '{key}' must be a mapped canonical field, not '{value}'")
    used = [f for f in (spec.marker_field, spec.count_field, spec.amount_field) if f is not None]
    if len(set(used)) != len(used) or "currency" in used:
        raise ConfigError(f"{where}: marker_field, count_field and amount_field must be different fields (not currency)")
    return spec


def _check_separators(report: ReportFormat, where: str) -> None:
    if len(report.delimiter) != 1 or report.delimiter in "\r\n\"":
        raise ConfigError(f"{where}: 'delimiter' must be one character (not a quote or line break)")
    if report.decimal_separator not in (".", ","):
        raise ConfigError(f"{where}: 'decimal_separator' must be '.' or ','")
    if report.decimal_separator == report.delimiter:
        raise ConfigError(f"{where}: 'decimal_separator' and 'delimiter' must differ")
    thousands = report.thousands_separator
    if thousands is not None:
        if thousands not in _THOUSANDS_ALLOWED:
            raise ConfigError(f"{where}: 'thousands_separator' must be one of . , ' space or _")
        if thousands in (report.decimal_separator, report.delimiter):
            raise ConfigError(f"{where}: 'thousands_separator' must differ from the decimal separator and the delimiter")


def _check_scalars(report: ReportFormat, where: str) -> None:
    scale = report.amount_scale
    if scale < 1 or scale > MAX_AMOUNT_SCALE or str(scale).rstrip("0") != "1":
        raise ConfigError(f"{where}: 'amount_scale' must be a power of ten from 1 to {MAX_AMOUNT_SCALE}, not {scale}")
    if not 0 <= report.skip_footer_rows <= MAX_FOOTER_ROWS:
        raise ConfigError(f"{where}: 'skip_footer_rows' must be 0 to {MAX_FOOTER_ROWS}")
    if not 1 <= len(report.footer_marker.strip()) <= 200:
        raise ConfigError(f"{where}: 'footer_marker' must be a text of 1 to 200 characters")
    if not 1 <= report.match_window_s <= MAX_WINDOW_S:
        raise ConfigError(f"{where}: 'match_window_s' must be 1 to {MAX_WINDOW_S} seconds")
    if not 0 <= report.cutoff_margin_s <= MAX_WINDOW_S:
        raise ConfigError(f"{where}: 'cutoff_margin_s' must be 0 to {MAX_WINDOW_S} seconds")
    try:
        name = codecs.lookup(report.encoding).name
    except LookupError as exc:
        raise ConfigError(f"{where}: unknown 'encoding' '{report.encoding}'") from exc
    if report.bom and name != "utf-8":
        raise ConfigError(f"{where}: 'bom' is only for the utf-8 encoding")
    try:
        ZoneInfo(report.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{where}: unknown 'timezone' '{report.timezone}'") from exc
    sample = _SAMPLE_TIME.replace(tzinfo=dt.timezone.utc) if "%z" in report.date_format else _SAMPLE_TIME
    try:
        read_back = dt.datetime.strptime(sample.strftime(report.date_format), report.date_format)
    except ValueError as exc:
        raise ConfigError(f"{where}: 'date_format' '{report.date_format}' cannot be read back ({exc})") from exc
    if read_back.replace(tzinfo=None, second=0, microsecond=0) != _SAMPLE_TIME.replace(second=0):
        raise ConfigError(f"{where}: 'date_format' '{report.date_format}' must hold the date and the time to the minute")


def parse_report_format(name: str, raw: dict) -> ReportFormat:
    """The ``[providers.NAME.report]`` table as a validated ``ReportFormat``; ``ConfigError`` naming the key."""
    where = f"providers.{name}.report"
    known = {"columns", "values", "trailer", "delimiter", "decimal_separator", "thousands_separator", "amount_scale",
             "date_format", "timezone", "encoding", "bom", "skip_footer_rows", "footer_marker", "match_window_s",
             "cutoff_margin_s"}
    if set(raw) - known:
        raise ConfigError(f"{where}: unknown key(s) {sorted(set(raw) - known)}")
    columns = _parse_columns(raw, where)
    thousands = _get(raw, "thousands_separator", where, str, None)
    report = ReportFormat(
        columns=columns,
        values=_parse_values(raw, where),
        delimiter=str(_get(raw, "delimiter", where, str, ",")),
        decimal_separator=str(_get(raw, "decimal_separator", where, str, ".")),
        thousands_separator=str(thousands) if thousands else None,
        amount_scale=int(_get(raw, "amount_scale", where, int, 1)),
        date_format=str(_get(raw, "date_format", where, str, "%Y-%m-%dT%H:%M:%S")),
        timezone=str(_get(raw, "timezone", where, str, "UTC")),
        encoding=str(_get(raw, "encoding", where, str, "utf-8")),
        bom=bool(_get(raw, "bom", where, bool, False)),
        skip_footer_rows=int(_get(raw, "skip_footer_rows", where, int, 0)),
        footer_marker=str(_get(raw, "footer_marker", where, str, "END OF REPORT")),
        trailer=_parse_trailer(raw, where, {**{f: f for f in REPORT_FIELDS}, **columns}),
        match_window_s=int(_get(raw, "match_window_s", where, int, 900)),
        cutoff_margin_s=int(_get(raw, "cutoff_margin_s", where, int, 3600)),
    )
    _check_separators(report, where)
    _check_scalars(report, where)
    return report
