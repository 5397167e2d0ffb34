"""The nightly reconcile job told as an operator's mornings: a late report, a crash, a re-run by hand.

Real databases (a SQLite file and PostgreSQL), real report files in a drop
folder, an explicit clock (``now``); nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select

from jobs import lease
from jobs import reconcile as reconcile_job
from jobs.history import start
from tests.jobs_support import discrepancies_of, drop, history, providers_file, report_bytes
from transfer_wallet.config import load_providers
from transfer_wallet.errors import ConfigError
from transfer_wallet.models import DiscrepancyEvent
from transfer_wallet.reconcile.run import reconcile
from transfer_wallet.reconcile_schedule import parse_reconcile_schedule, previous_business_date

UTC = dt.timezone.utc
MORNING = dt.datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
DAY = dt.date(2026, 12, 1)
ONE_UNKNOWN_TRANSFER = report_bytes("2026-12-01", ("acme-x1", "P9", "10.00"))


@pytest.fixture
def acme(tmp_path):
    return load_providers(providers_file(tmp_path))["acme"]


def test_a_report_not_there_is_file_missing_and_the_run_that_finds_it_clears_it(db, acme, tmp_path):
    first = reconcile_job.run(db, acme, now=MORNING)
    assert first.outcome == "file_missing" and first.window == "acme:2026-12-01"
    later = reconcile_job.run(db, acme, now=MORNING + dt.timedelta(minutes=15))
    assert later.outcome == "file_missing"
    [missing] = discrepancies_of(db, kind="FILE_MISSING")
    assert (missing.status, missing.times_seen, missing.business_date) == ("open", 2, DAY)

    drop(tmp_path, "acme", "2026-12-01", ONE_UNKNOWN_TRANSFER)
    found = reconcile_job.run(db, acme, now=MORNING + dt.timedelta(minutes=30))
    assert found.outcome == "succeeded", found.summary()
    assert found.summary().startswith("reconcile acme:2026-12-01: run ")
    [missing] = discrepancies_of(db, kind="FILE_MISSING")
    assert missing.status == "cleared"
    with db.engine.connect() as connection:
        actions = connection.execute(select(DiscrepancyEvent.__table__.c.action).where(
            DiscrepancyEvent.__table__.c.discrepancy_id == missing.id)).scalars().all()
    assert actions == ["recorded", "cleared"]
    assert [r.kind for r in discrepancies_of(db, status="open")] == ["MISSING_IN_LEDGER"]
    assert [r.outcome for r in history(db, job="reconcile")] == ["file_missing", "file_missing", "succeeded"]


def test_a_finished_window_is_not_run_again_unless_forced(db, acme, tmp_path):
    drop(tmp_path, "acme", "2026-12-01", ONE_UNKNOWN_TRANSFER)
    assert reconcile_job.run(db, acme, now=MORNING).outcome == "succeeded"
    again = reconcile_job.run(db, acme, now=MORNING + dt.timedelta(hours=1))
    assert again.outcome == "done" and "already done" in again.summary()
    assert len(history(db, job="reconcile")) == 1
    forced = reconcile_job.run(db, acme, now=MORNING + dt.timedelta(hours=2), force=True)
    assert forced.outcome == "succeeded"
    assert len(history(db, job="reconcile")) == 2
    [found] = discrepancies_of(db)
    assert found.times_seen == 2  # the re-run upserted the same break


def test_a_crashed_run_is_run_again_and_duplicates_no_discrepancy(db, acme, tmp_path):
    drop(tmp_path, "acme", "2026-12-01", ONE_UNKNOWN_TRANSFER)
    # The crashed run had stored its reconciliation, then died before recording its end;
    # its lease (on another host) was left to lapse.
    reconcile(db, acme, DAY, tmp_path / "drop" / "acme-2026-12-01.csv", now=MORNING)
    start(db, "reconcile", "acme:2026-12-01", "other-host:77", provider="acme", business_date=DAY)
    lease.acquire(db, "reconcile:acme:2026-12-01", ttl_s=1.0, holder="other-host:77")  # leases: wall clock
    held = reconcile_job.run(db, acme, now=MORNING + dt.timedelta(seconds=10))
    assert held.skipped and held.lease.holder == "other-host:77"
    time.sleep(1.1)  # the lease lapses

    # Its reconciliation succeeded, so the window is done; its row is finished as crashed.
    rerun = reconcile_job.run(db, acme, now=MORNING + dt.timedelta(minutes=5))
    assert rerun.outcome == "done", rerun.summary()
    [crashed] = history(db, job="reconcile")
    assert crashed.outcome == "failed" and crashed.error.startswith("crashed: ")
    forced = reconcile_job.run(db, acme, now=MORNING + dt.timedelta(minutes=6), force=True)
    assert forced.outcome == "succeeded", forced.summary()
    assert [r.outcome for r in history(db, job="reconcile")] == ["failed", "succeeded"]
    [found] = discrepancies_of(db)
    assert (found.kind, found.times_seen, found.status) == ("MISSING_IN_LEDGER", 2, "open")


def test_an_unreadable_report_fails_the_run_which_is_recorded_and_retried(db, acme, tmp_path):
    drop(tmp_path, "acme", "2026-12-01", b"nothing,like,the,header\n1,2,3,4\n")
    failed = reconcile_job.run(db, acme, now=MORNING)
    assert failed.outcome == "failed" and failed.summary().startswith("reconcile acme:2026-12-01: FAILED: ")
    [row] = history(db, job="reconcile")
    assert row.outcome == "failed" and row.error and row.finished_at is not None
    drop(tmp_path, "acme", "2026-12-01", ONE_UNKNOWN_TRANSFER)
    assert reconcile_job.run(db, acme, now=MORNING).outcome == "succeeded"


def test_the_business_date_is_the_previous_day_in_the_report_timezone():
    one_in_the_morning_utc = dt.datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert previous_business_date(one_in_the_morning_utc, "UTC") == dt.date(2026, 12, 1)
    assert previous_business_date(one_in_the_morning_utc, "America/Sao_Paulo") == dt.date(2026, 11, 30)


def test_the_retry_tick_runs_only_between_the_nightly_time_and_the_retry_limit(db, acme):
    assert reconcile_job.run_if_due(db, acme, now=MORNING - dt.timedelta(minutes=1)) is None
    assert reconcile_job.run_if_due(db, acme, now=MORNING.replace(hour=18, minute=1)) is None
    assert reconcile_job.run_if_due(db, acme, now=MORNING).outcome == "file_missing"


@pytest.mark.parametrize("table, message", [
    ({"at": "6 o'clock"}, "'at' must be a local time"),
    ({"source": "ftp"}, "'source' must be one of endpoint, drop"),
    ({"source": "drop"}, "needs a 'drop' path pattern"),
    ({"drop": "drop/acme.csv"}, "'drop' must be a path pattern holding {date}"),
    ({"retry_every_s": 0}, "'retry_every_s' must be a whole number of seconds >= 1"),
    ({"at": "06:00", "retry_until": "05:00"}, "'retry_until' (05:00) is before 'at' (06:00)"),
    ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ({"every": 3}, "unknown key(s) ['every']"),
])
def test_a_bad_reconcile_table_is_a_one_line_config_error(table, message):
    with pytest.raises(ConfigError) as raised:
        parse_reconcile_schedule("acme", table, "UTC")
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).startswith("providers.acme.reconcile: ")


def test_the_schedule_defaults_to_the_report_timezone_and_the_endpoint():
    schedule = parse_reconcile_schedule("betsul", {"at": "07:30"}, "America/Sao_Paulo")
    assert (schedule.timezone, schedule.source, schedule.at) == ("America/Sao_Paulo", "endpoint", dt.time(7, 30))
