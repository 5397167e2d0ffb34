"""The key-age job (daily): warn about provider signing keys older than 90 days or whose secret is unset.

One WARNING log line per finding and the counts in the run's summary. The
window is the UTC date, so the scheduler's daily run warns once a day however
many scheduler processes run (``key-age:DATE`` lease, ``once``). The ages come
from the library (``providers.signing.key_ages``, as ``tw provider keys``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from jobs.history import JobRun, Outcome, run_window
from jobs.lease import DEFAULT_TTL_S, Lease
from transfer_wallet.config import ProviderConfig
from transfer_wallet.db import Database
from transfer_wallet.models import utc_now
from transfer_wallet.providers.signing import KEY_MAX_AGE_DAYS, key_ages

JOB = "key-age"
log = logging.getLogger("transfer_wallet.jobs")


@dataclass
class KeyAgeReport:
    """How many keys were checked, and one line per key too old or without its secret."""

    keys_checked: int = 0
    too_old: int = 0
    secret_unset: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The counts and the warning lines."""
        return {"keys_checked": self.keys_checked, "too_old": self.too_old, "secret_unset": self.secret_unset,
                "warnings": list(self.warnings)}

    def line(self) -> str:
        """``keys 3, too old 1, secret unset 0 (warning; ...)``."""
        text = f"keys {self.keys_checked}, too old {self.too_old}, secret unset {self.secret_unset}"
        return text + (" (" + "; ".join(self.warnings) + ")" if self.warnings else "")


def check(providers: Iterable[ProviderConfig], today: dt.date) -> KeyAgeReport:
    """The key-age findings for ``today`` (pure: reads the configuration and the environment)."""
    report = KeyAgeReport()
    for age in key_ages(providers, today):
        report.keys_checked += 1
        if age.too_old:
            report.too_old += 1
            report.warnings.append(f"key {age.key_id} of {age.provider} is {age.age_days} days old "
                                   f"(rotate every {KEY_MAX_AGE_DAYS} days)")
        if not age.secret_set:
            report.secret_unset += 1
            report.warnings.append(f"key {age.key_id} of {age.provider}: secret variable {age.secret_env} is not set")
    return report


def run(db: Database, providers: Iterable[ProviderConfig], *, now: dt.datetime | None = None, force: bool = False,
        ttl_s: float = DEFAULT_TTL_S) -> JobRun:
    """Check every key once for ``now``'s UTC date (lease ``key-age:DATE``); warnings are logged one per line."""
    today = (now or utc_now()).astimezone(dt.timezone.utc).date()
    configs = list(providers)

    def body(_lease: Lease) -> Outcome:
        report = check(configs, today)
        for warning in report.warnings:
            log.warning("key-age: %s", warning)
        return Outcome(report, "succeeded", report.line())

    return run_window(db, JOB, body, lease_name=f"{JOB}:{today.isoformat()}", window=today.isoformat(), once=True,
                      force=force, ttl_s=ttl_s)
