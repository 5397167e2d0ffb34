"""The scheduler's own settings: the ``[jobs]`` table of the providers TOML file (all optional).

::

    [jobs]
    timeouts_every_s = 30       # the timeout sweep's interval
    in_doubt_every_s = 60       # the in-doubt sweep's interval
    key_age_at = "07:00"        # the daily key-age check (UTC)
    misfire_grace_s = 3600      # a daily run missed by less than this (host asleep, restart) still runs
    lease_ttl_s = 20            # a crashed holder's lease lapses after this

The providers of the same file carry their nightly reconcile times
(``[providers.NAME.reconcile]``, see ``transfer_wallet.reconcile_schedule``).
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from jobs.lease import DEFAULT_TTL_S
from transfer_wallet.config import DEFAULT_PROVIDERS_FILE
from transfer_wallet.errors import ConfigError


@dataclass(frozen=True)
class JobSettings:
    """Intervals and times of the scheduled jobs."""

    timeouts_every_s: int = 30
    in_doubt_every_s: int = 60
    key_age_at: dt.time = dt.time(7, 0)
    misfire_grace_s: int = 3600
    lease_ttl_s: float = DEFAULT_TTL_S


def parse_settings(raw: object) -> JobSettings:
    """The ``[jobs]`` table as ``JobSettings``; one-line ``ConfigError`` naming a bad key."""
    if not isinstance(raw, dict):
        raise ConfigError("jobs: must be a table")
    defaults = JobSettings()
    unknown = set(raw) - set(JobSettings.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"jobs: unknown key(s) {sorted(unknown)}")
    numbers: dict[str, float] = {}
    for key in ("timeouts_every_s", "in_doubt_every_s", "misfire_grace_s", "lease_ttl_s"):
        value = raw.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"jobs: '{key}' must be a positive number of seconds, got {value!r}")
        if key != "lease_ttl_s" and not isinstance(value, int):
            raise ConfigError(f"jobs: '{key}' must be a whole number of seconds, got {value!r}")
        numbers[key] = value
    at = raw.get("key_age_at", defaults.key_age_at)
    try:
        key_age_at = at if isinstance(at, dt.time) else dt.time.fromisoformat(str(at))
    except ValueError:
        raise ConfigError(f"jobs: 'key_age_at' must be a time like \"07:00\", got {at!r}") from None
    return JobSettings(key_age_at=key_age_at.replace(tzinfo=None), **numbers)  # type: ignore[arg-type]


def load_settings(path: str | Path | None = None) -> JobSettings:
    """``[jobs]`` of the providers file (``path``, else ``TW_PROVIDERS_FILE``, else ``./providers.toml``)."""
    file = Path(path or os.environ.get("TW_PROVIDERS_FILE") or DEFAULT_PROVIDERS_FILE)
    if not file.exists():
        return JobSettings()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    try:
        return parse_settings(data.get("jobs", {}))
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
