"""Configuration: the database URL and the providers TOML file.

Environment first:

- ``TW_DATABASE_URL``: SQLAlchemy URL of the ledger database
  (default ``sqlite:///transfer_wallet.db`` in the working directory).
- ``TW_PROVIDERS_FILE``: path of the providers TOML file
  (default ``providers.toml`` in the working directory, else none).

Secrets are never stored in the TOML: a provider's keys name the *environment
variable* that holds each secret (``secret_env = "ACME_KEY_2026_11"``), and the
secret is read from the environment only when a request is signed.

A provider entry (see ``sample_data/providers.toml``)::

    [providers.acme]
    base_url = "http://127.0.0.1:8701"
    currency = "EUR"                 # the provider's game-wallet currency
    idle_timeout_s = 900
    max_session_s = 14400
    connect_timeout_s = 2.0
    read_timeout_s = 10.0
    max_attempts = 4
    max_retry_s = 20.0
    allowed_ips = ["127.0.0.1", "::1"]   # simulator allow-list

    [[providers.acme.keys]]
    key_id = "acme-2026-11"
    secret_env = "TW_ACME_SECRET_2026_11"
    created = 2026-11-01

    [providers.acme.report]
    delimiter = ","
    decimal_separator = "."
    date_format = "%Y-%m-%dT%H:%M:%S"
    timezone = "UTC"
    [providers.acme.report.columns]   # canonical field -> provider column name
    provider_tx_id = "tx_id"
    ...
    [providers.acme.report.values]    # canonical value -> provider code
    TRANSFER_IN = "IN"
    ...
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from transfer_wallet.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///transfer_wallet.db"
DEFAULT_PROVIDERS_FILE = "providers.toml"

#: Canonical report fields every provider's report maps onto.
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
#: Canonical value codes of the ``type`` and ``status`` report fields.
REPORT_VALUES: tuple[str, ...] = ("TRANSFER_IN", "TRANSFER_OUT", "SUCCESS", "FAILED")

_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]*")


def database_url(override: str | None = None) -> str:
    """The database URL: ``override`` (``--db``), else ``TW_DATABASE_URL``, else the SQLite default."""
    url = override or os.environ.get("TW_DATABASE_URL") or DEFAULT_DATABASE_URL
    return url.strip()


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """One signing key of a provider: its id and the env var holding the secret."""

    key_id: str
    secret_env: str
    created: dt.date | None = None

    def secret(self) -> bytes:
        """The secret from the environment; ``ConfigError`` naming the variable if unset."""
        value = os.environ.get(self.secret_env)
        if not value:
            raise ConfigError(
                f"environment variable {self.secret_env} (secret of key {self.key_id}) is not set"
            )
        return value.encode()

    def __repr__(self) -> str:  # never shows the secret, only where it lives
        return f"ProviderKey(key_id={self.key_id!r}, secret_env={self.secret_env!r})"


@dataclass(frozen=True, slots=True)
class ReportFormat:
    """How a provider writes its daily transfer report (CSV)."""

    columns: dict[str, str]
    values: dict[str, str]
    delimiter: str = ","
    decimal_separator: str = "."
    date_format: str = "%Y-%m-%dT%H:%M:%S"
    timezone: str = "UTC"

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One game provider: where it is, its currency, timeouts, keys and report format."""

    name: str
    base_url: str
    currency: str
    keys: tuple[ProviderKey, ...]
    report: ReportFormat
    idle_timeout_s: int = 900
    max_session_s: int = 4 * 3600
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 10.0
    max_attempts: int = 4
    max_retry_s: float = 20.0
    allowed_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    extra: dict[str, object] = field(default_factory=dict)


def _require(table: dict, key: str, where: str, kind: type | tuple[type, ...]) -> object:
    if key not in table:
        raise ConfigError(f"{where}: missing '{key}'")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    return value


def _optional(table: dict, key: str, where: str, kind: type | tuple[type, ...], default: object) -> object:
    if key not in table:
        return default
    return _require(table, key, where, kind)


def _parse_report(name: str, raw: dict) -> ReportFormat:
    where = f"providers.{name}.report"
    columns = dict(_optional(raw, "columns", where, dict, {}))  # type: ignore[arg-type]
    columns = {**{f: f for f in REPORT_FIELDS}, **columns}
    unknown = set(columns) - set(REPORT_FIELDS)
    if unknown:
        raise ConfigError(f"{where}.columns: unknown canonical field(s) {sorted(unknown)}")
    values = dict(_optional(raw, "values", where, dict, {}))  # type: ignore[arg-type]
    values = {**{v: v for v in REPORT_VALUES}, **values}
    unknown = set(values) - set(REPORT_VALUES)
    if unknown:
        raise ConfigError(f"{where}.values: unknown canonical value(s) {sorted(unknown)}")
    for mapping, label in ((columns, "columns"), (values, "values")):
        if any(not isinstance(v, str) or not v for v in mapping.values()):
            raise ConfigError(f"{where}.{label}: every entry must be a non-empty string")
        if len(set(mapping.values())) != len(mapping):
            raise ConfigError(f"{where}.{label}: two canonical entries map to the same name")
    report = ReportFormat(
        columns=columns,
        values=values,
        delimiter=str(_optional(raw, "delimiter", where, str, ",")),
        decimal_separator=str(_optional(raw, "decimal_separator", where, str, ".")),
        date_format=str(_optional(raw, "date_format", where, str, "%Y-%m-%dT%H:%M:%S")),
        timezone=str(_optional(raw, "timezone", where, str, "UTC")),
    )
    if len(report.delimiter) != 1:
        raise ConfigError(f"{where}: delimiter must be one character")
    if report.decimal_separator not in (".", ","):
        raise ConfigError(f"{where}: decimal_separator must be '.' or ','")
    if report.decimal_separator == report.delimiter:
        raise ConfigError(f"{where}: decimal_separator and delimiter must differ")
    try:
        ZoneInfo(report.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{where}: unknown timezone '{report.timezone}'") from exc
    return report


def _parse_provider(name: str, raw: object) -> ProviderConfig:
    from transfer_wallet.money import MoneyError, currency

    where = f"providers.{name}"
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"{where}: provider names are lower-case letters, digits, '-' and '_'")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    base_url = str(_require(raw, "base_url", where, str))
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: base_url must start with http:// or https://")
    try:
        ccy = currency(str(_require(raw, "currency", where, str))).code
    except MoneyError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    keys_raw = _optional(raw, "keys", where, list, [])
    keys: list[ProviderKey] = []
    for index, key in enumerate(keys_raw):  # type: ignore[union-attr]
        key_where = f"{where}.keys[{index}]"
        if not isinstance(key, dict):
            raise ConfigError(f"{key_where}: must be a table")
        if "secret" in key:
            raise ConfigError(f"{key_where}: secrets never go in the file; name an env var with secret_env")
        secret_env = str(_require(key, "secret_env", key_where, str))
        if not _ENV_NAME_RE.fullmatch(secret_env):
            raise ConfigError(f"{key_where}: secret_env must be an environment variable name")
        created = _optional(key, "created", key_where, dt.date, None)
        keys.append(ProviderKey(str(_require(key, "key_id", key_where, str)), secret_env, created))  # type: ignore[arg-type]
    if len({k.key_id for k in keys}) != len(keys):
        raise ConfigError(f"{where}: duplicate key_id")
    numbers: dict[str, object] = {}
    for key, kind, default in (
        ("idle_timeout_s", int, 900),
        ("max_session_s", int, 4 * 3600),
        ("connect_timeout_s", (int, float), 2.0),
        ("read_timeout_s", (int, float), 10.0),
        ("max_attempts", int, 4),
        ("max_retry_s", (int, float), 20.0),
    ):
        value = _optional(raw, key, where, kind, default)
        if value <= 0:  # type: ignore[operator]
            raise ConfigError(f"{where}: '{key}' must be positive")
        numbers[key] = value
    allowed = tuple(str(ip) for ip in _optional(raw, "allowed_ips", where, list, ["127.0.0.1", "::1"]))  # type: ignore[union-attr]
    known = {"base_url", "currency", "keys", "report", "allowed_ips", *numbers}
    extra = {k: v for k, v in raw.items() if k not in known}
    return ProviderConfig(
        name=name,
        base_url=base_url.rstrip("/"),
        currency=ccy,
        keys=tuple(keys),
        report=_parse_report(name, dict(_optional(raw, "report", where, dict, {}))),  # type: ignore[arg-type]
        allowed_ips=allowed,
        extra=extra,
        **numbers,  # type: ignore[arg-type]
    )


def load_providers(path: str | Path | None = None) -> dict[str, ProviderConfig]:
    """Providers from ``path`` (else ``TW_PROVIDERS_FILE``, else ``./providers.toml``).

    A missing default file means no providers; a missing *named* file, bad TOML or a
    bad entry raises ``ConfigError`` with the file and the entry named.
    """
    explicit = path or os.environ.get("TW_PROVIDERS_FILE")
    file = Path(explicit or DEFAULT_PROVIDERS_FILE)
    if not file.exists():
        if explicit:
            raise ConfigError(f"providers file {file} does not exist")
        return {}
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    providers = data.get("providers", {})
    if not isinstance(providers, dict):
        raise ConfigError(f"{file}: 'providers' must be a table")
    try:
        return {name: _parse_provider(name, raw) for name, raw in providers.items()}
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc


def provider_config(name: str, path: str | Path | None = None) -> ProviderConfig:
    """One provider's configuration, or ``ConfigError`` listing the known names."""
    providers = load_providers(path)
    if name not in providers:
        known = ", ".join(sorted(providers)) or "none configured"
        raise ConfigError(f"unknown provider '{name}' (known: {known})")
    return providers[name]
