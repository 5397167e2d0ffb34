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
    max_attempts = 4                 # HTTP attempts per request (retries of one call)
    max_retry_s = 20.0
    max_open_sessions = 1            # open sessions per player at this provider
    stuck_after_attempts = 8         # close attempts before a closing session shows as stuck
    review_out_multiple = 10         # flag a transfer-out above 10x the session's transfer-in
    review_out_amount = { EUR = "5000.00" }   # ... or above this amount per currency (optional)
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
    [providers.acme.report.values]    # canonical value -> provider code(s)
    TRANSFER_IN = "IN"
    SUCCESS = ["OK", "COMPLETED"]
    ...

Every key of the report table: ``transfer_wallet/reconcile/profile.py``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, overload

from transfer_wallet.errors import ConfigError
# The report profile lives with reconciliation; re-exported here for the config's readers.
from transfer_wallet.reconcile.profile import REPORT_FIELDS as REPORT_FIELDS
from transfer_wallet.reconcile.profile import REPORT_VALUES as REPORT_VALUES
from transfer_wallet.reconcile.profile import ReportFormat as ReportFormat
from transfer_wallet.reconcile.profile import TrailerSpec as TrailerSpec
from transfer_wallet.reconcile.profile import parse_report_format

if TYPE_CHECKING:
    from transfer_wallet.money import Money
    from transfer_wallet.reconcile_schedule import ReconcileSchedule

DEFAULT_DATABASE_URL = "sqlite:///transfer_wallet.db"
DEFAULT_PROVIDERS_FILE = "providers.toml"
#: Session defaults, the one place they are set (``SessionPolicy`` uses them too).
DEFAULT_IDLE_TIMEOUT_S = 900
DEFAULT_MAX_SESSION_S = 4 * 3600
DEFAULT_MAX_OPEN_SESSIONS = 1
DEFAULT_STUCK_AFTER_ATTEMPTS = 8
#: A transfer-out above this multiple of the session's transfer-in is flagged for review.
DEFAULT_REVIEW_OUT_MULTIPLE = Decimal(10)

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
class ProviderConfig:
    """One game provider: where it is, its currency, timeouts, keys and report format.

    ``max_attempts`` counts HTTP attempts of one request; ``stuck_after_attempts``
    counts close attempts of a session before it shows as stuck. A transfer-out above
    ``review_out_multiple`` times the transfer-in, or above ``review_out_amount`` in
    its currency, is booked and flagged for review (``TRANSFER_OUT_REVIEW``).
    """

    name: str
    base_url: str
    currency: str
    keys: tuple[ProviderKey, ...]
    report: ReportFormat
    idle_timeout_s: int = DEFAULT_IDLE_TIMEOUT_S
    max_session_s: int = DEFAULT_MAX_SESSION_S
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 10.0
    max_attempts: int = 4
    max_retry_s: float = 20.0
    max_open_sessions: int = DEFAULT_MAX_OPEN_SESSIONS
    stuck_after_attempts: int = DEFAULT_STUCK_AFTER_ATTEMPTS
    review_out_multiple: Decimal | None = DEFAULT_REVIEW_OUT_MULTIPLE
    review_out_amount: dict[str, Money] = field(default_factory=dict)
    allowed_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    extra: dict[str, object] = field(default_factory=dict)
    #: ``[providers.NAME.reconcile]``: the nightly reconciliation (None: no nightly run).
    reconcile: ReconcileSchedule | None = None


_T = TypeVar("_T")
_U = TypeVar("_U")
_D = TypeVar("_D")
_N = TypeVar("_N", int, float)


@overload
def _require(table: dict[str, Any], key: str, where: str, kind: type[_T]) -> _T: ...
@overload
def _require(table: dict[str, Any], key: str, where: str, kind: tuple[type[_T], type[_U]]) -> _T | _U: ...
@overload
def _require(table: dict[str, Any], key: str, where: str, kind: tuple[type, ...]) -> object: ...
def _require(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> object:
    """``table[key]``, checked to be a ``kind`` (a bool is not an int); typed as that kind."""
    if key not in table:
        raise ConfigError(f"{where}: missing '{key}'")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    return value


@overload
def _optional(table: dict[str, Any], key: str, where: str, kind: type[_T], default: _D) -> _T | _D: ...
@overload
def _optional(table: dict[str, Any], key: str, where: str, kind: tuple[type[_T], type[_U]], default: _D) -> _T | _U | _D: ...
@overload
def _optional(table: dict[str, Any], key: str, where: str, kind: tuple[type, ...], default: object) -> object: ...
def _optional(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: object) -> object:
    """Like ``_require``, but ``default`` when the key is absent."""
    if key not in table:
        return default
    return _require(table, key, where, kind)


def _parse_report(name: str, raw: dict) -> ReportFormat:
    """The provider's report profile (``transfer_wallet.reconcile.profile`` parses and validates it)."""
    return parse_report_format(name, raw)


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
    for index, key in enumerate(keys_raw):
        key_where = f"{where}.keys[{index}]"
        if not isinstance(key, dict):
            raise ConfigError(f"{key_where}: must be a table")
        if "secret" in key:
            raise ConfigError(f"{key_where}: secrets never go in the file; name an env var with secret_env")
        secret_env = str(_require(key, "secret_env", key_where, str))
        if not _ENV_NAME_RE.fullmatch(secret_env):
            raise ConfigError(f"{key_where}: secret_env must be an environment variable name")
        created = _optional(key, "created", key_where, dt.date, None)
        keys.append(ProviderKey(str(_require(key, "key_id", key_where, str)), secret_env, created))
    if len({k.key_id for k in keys}) != len(keys):
        raise ConfigError(f"{where}: duplicate key_id")
    numbers = _parse_numbers(raw, where)
    allowed = tuple(str(ip) for ip in _optional(raw, "allowed_ips", where, list, ["127.0.0.1", "::1"]))
    known = {"base_url", "currency", "keys", "report", "allowed_ips", "review_out_multiple", "review_out_amount", *numbers}
    known.add("reconcile")
    extra = {k: v for k, v in raw.items() if k not in known}
    return ProviderConfig(
        name=name,
        base_url=base_url.rstrip("/"),
        currency=ccy,
        keys=tuple(keys),
        report=_parse_report(name, dict(_optional(raw, "report", where, dict, {}))),
        allowed_ips=allowed,
        review_out_multiple=_parse_review_multiple(raw, where),
        review_out_amount=_parse_review_amounts(raw, where),
        extra=extra,
        reconcile=_parse_reconcile(name, raw),
        **numbers,
    )


class _Numbers(TypedDict):
    """The positive numeric settings of a provider, as ``ProviderConfig`` fields."""

    idle_timeout_s: int
    max_session_s: int
    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int
    max_retry_s: float
    max_open_sessions: int
    stuck_after_attempts: int


def _parse_numbers(raw: dict[str, Any], where: str) -> _Numbers:
    """The numeric settings, each positive; whole numbers where a count is meant, else int or float."""

    def whole(key: str, default: int) -> int:
        return positive(key, _optional(raw, key, where, int, default))

    def number(key: str, default: float) -> float:
        return positive(key, _optional(raw, key, where, (int, float), default))

    def positive(key: str, value: _N) -> _N:
        if value <= 0:
            raise ConfigError(f"{where}: '{key}' must be positive")
        return value

    return _Numbers(
        idle_timeout_s=whole("idle_timeout_s", DEFAULT_IDLE_TIMEOUT_S),
        max_session_s=whole("max_session_s", DEFAULT_MAX_SESSION_S),
        connect_timeout_s=number("connect_timeout_s", 2.0),
        read_timeout_s=number("read_timeout_s", 10.0),
        max_attempts=whole("max_attempts", 4),
        max_retry_s=number("max_retry_s", 20.0),
        max_open_sessions=whole("max_open_sessions", DEFAULT_MAX_OPEN_SESSIONS),
        stuck_after_attempts=whole("stuck_after_attempts", DEFAULT_STUCK_AFTER_ATTEMPTS),
    )


def _parse_review_multiple(raw: dict, where: str) -> Decimal | None:
    """``review_out_multiple``: a positive number (default 10); ``0`` turns the check off."""
    value = _optional(raw, "review_out_multiple", where, (int, float, str), DEFAULT_REVIEW_OUT_MULTIPLE)
    try:
        multiple = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: 'review_out_multiple' must be a number, got {value!r}") from None
    if not multiple.is_finite() or multiple < 0:
        raise ConfigError(f"{where}: 'review_out_multiple' must be a number >= 0, got {value!r}")
    return multiple if multiple else None


def _parse_review_amounts(raw: dict, where: str) -> dict[str, Money]:
    """``review_out_amount``: a table currency -> amount as a decimal string, e.g. ``{ EUR = "5000.00" }``."""
    from transfer_wallet.money import Money, MoneyError, currency

    table = _optional(raw, "review_out_amount", where, dict, {})
    assert isinstance(table, dict)
    amounts: dict[str, Money] = {}
    for code, text in table.items():
        if not isinstance(text, str):
            raise ConfigError(f"{where}.review_out_amount: {code!r} must be an amount in quotes, e.g. \"5000.00\"")
        try:
            unit = currency(code)
            amounts[unit.code] = Money.parse(text, unit)
        except MoneyError as exc:
            raise ConfigError(f"{where}.review_out_amount: {exc}") from exc
    return amounts


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


def _parse_reconcile(name: str, raw: dict) -> ReconcileSchedule | None:
    """``[providers.NAME.reconcile]`` (see ``transfer_wallet.reconcile_schedule``); None when absent."""
    from transfer_wallet.reconcile_schedule import parse_reconcile_schedule

    if "reconcile" not in raw:
        return None
    report = raw.get("report")
    timezone = str(report.get("timezone", "UTC")) if isinstance(report, dict) else "UTC"
    return parse_reconcile_schedule(name, raw["reconcile"], timezone)
