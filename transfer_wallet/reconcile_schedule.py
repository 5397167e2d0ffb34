"""When and from where a provider's nightly reconciliation runs: the ``[providers.NAME.reconcile]`` table.

::

    [providers.acme.reconcile]
    at = "06:00"                      # local time of the nightly run (HH:MM)
    timezone = "UTC"                  # of ``at`` and ``retry_until`` (default: the report's timezone)
    source = "drop"                   # "endpoint": the provider's signed report endpoint (default)
    drop = "drop/acme/acme-{date}.csv"   # the drop folder's file pattern ({date} = YYYY-MM-DD)
    retry_every_s = 900               # a missing report is looked for again this often ...
    retry_until = "18:00"             # ... until this local time

The business date of a run is the provider's previous day in its *report*
timezone (``previous_business_date``). A relative ``drop`` path is taken from
the working directory of the process (the scheduler's ``WorkingDirectory``).
Parsed by ``transfer_wallet.config`` into ``ProviderConfig.reconcile`` (None
when the table is absent: the provider has no nightly run, though
``tw jobs run reconcile`` still works with the defaults).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from transfer_wallet.errors import ConfigError

SOURCES = ("endpoint", "drop")
DEFAULT_AT = dt.time(6, 0)
DEFAULT_RETRY_EVERY_S = 900
DEFAULT_RETRY_UNTIL = dt.time(18, 0)


@dataclass(frozen=True, slots=True)
class ReconcileSchedule:
    """A provider's nightly reconciliation: local time, timezone, report source, retries of a missing report."""

    at: dt.time = DEFAULT_AT
    timezone: str = "UTC"
    source: str = "endpoint"
    drop: str | None = None
    retry_every_s: int = DEFAULT_RETRY_EVERY_S
    retry_until: dt.time = DEFAULT_RETRY_UNTIL

    @property
    def tzinfo(self) -> ZoneInfo:
        """The timezone of ``at`` and ``retry_until``."""
        return ZoneInfo(self.timezone)

    def drop_path(self, business_date: dt.date) -> Path:
        """The drop-folder file of ``business_date`` (only for ``source = "drop"``)."""
        assert self.drop is not None, "drop_path needs a drop pattern"
        return Path(self.drop.format(date=business_date.isoformat()))

    def in_retry_window(self, now: dt.datetime) -> bool:
        """True between ``at`` and ``retry_until`` (local time) on ``now``'s local day."""
        local = now.astimezone(self.tzinfo).time().replace(tzinfo=None)
        return self.at <= local <= self.retry_until


def previous_business_date(now: dt.datetime, timezone: str) -> dt.date:
    """The day before ``now``'s local date in ``timezone``: the day a nightly run reconciles."""
    return now.astimezone(ZoneInfo(timezone)).date() - dt.timedelta(days=1)


def _time(value: object, where: str, key: str) -> dt.time:
    if isinstance(value, dt.time):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: '{key}' must be a local time like \"06:00\", got {value!r}")


def parse_reconcile_schedule(name: str, raw: object, report_timezone: str) -> ReconcileSchedule:
    """The ``[providers.NAME.reconcile]`` table as a ``ReconcileSchedule``; one-line ``ConfigError`` if bad."""
    where = f"providers.{name}.reconcile"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(raw) - {"at", "timezone", "source", "drop", "retry_every_s", "retry_until"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    timezone = raw.get("timezone", report_timezone)
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown timezone {timezone!r}") from None
    drop = raw.get("drop")
    if drop is not None and (not isinstance(drop, str) or "{date}" not in drop):
        raise ConfigError(f"{where}: 'drop' must be a path pattern holding {{date}}, e.g. \"drop/{name}/{name}-{{date}}.csv\"")
    source = raw.get("source", "drop" if drop else "endpoint")
    if source not in SOURCES:
        raise ConfigError(f"{where}: 'source' must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "drop" and drop is None:
        raise ConfigError(f"{where}: source \"drop\" needs a 'drop' path pattern")
    retry_every_s = raw.get("retry_every_s", DEFAULT_RETRY_EVERY_S)
    if not isinstance(retry_every_s, int) or isinstance(retry_every_s, bool) or retry_every_s < 1:
        raise ConfigError(f"{where}: 'retry_every_s' must be a whole number of seconds >= 1")
    at = _time(raw.get("at", DEFAULT_AT), where, "at")
    retry_until = _time(raw.get("retry_until", DEFAULT_RETRY_UNTIL), where, "retry_until")
    if retry_until < at:
        raise ConfigError(f"{where}: 'retry_until' ({retry_until:%H:%M}) is before 'at' ({at:%H:%M})")
    return ReconcileSchedule(at=at, timezone=str(timezone), source=str(source), drop=drop,
                             retry_every_s=retry_every_s, retry_until=retry_until)
