"""Nightly-job findings of the second review: a skipped window, a reopened FILE_MISSING, a crashed run's row.

Real databases (a SQLite file and PostgreSQL), real report files in a drop
folder, an explicit clock (``now``); nothing is mocked.
"""

from __future__ import annotations

import datetime as dt

import pytest

from jobs import reconcile as reconcile_job
from jobs.history import start
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet
from tests.jobs_support import discrepancies_of, drop, history, providers_file, report_bytes
from transfer_wallet.config import load_providers
from transfer_wallet.reconcile.run import reconcile

UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    """A UTC instant from ``YYYY-MM-DD HH:MM``."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _report(day: str) -> bytes:
    return report_bytes(day, (f"acme-{day}", "P9", "10.00"))


def _outcomes(db) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in history(db, job="reconcile"):
        found.setdefault(row.window_key, []).append(row.outcome)
    return found


@pytest.fixture
def acme(tmp_path):
    return load_providers(providers_file(tmp_path))["acme"]


def _ran_on(db, acme, day: str) -> None:
    """The scheduler's nightly run of ``day`` (its report not there): history from before the outage."""
    ran = reconcile_job.run(db, acme, dt.date.fromisoformat(day), now=at(day + " 06:00") + dt.timedelta(days=1))
    assert ran.outcome == "file_missing"


def test_a_day_whose_whole_retry_window_was_missed_is_caught_up_next_morning(db, acme, tmp_path):
    _ran_on(db, acme, "2026-11-30")
    for day in ("2026-12-01", "2026-12-02"):
        drop(tmp_path, "acme", day, _report(day))
    # The scheduler comes back at 18:30 on 12-02, after 12-01's retry hours: nothing runs that evening ...
    for minute in range(0, 5 * 60 + 30, 15):
        assert reconcile_job.tick(db, acme, now=at("2026-12-02 18:30") + dt.timedelta(minutes=minute)) == []
    # ... the next morning's tick runs 12-02 and catches up 12-01, whose report is there.
    runs = reconcile_job.tick(db, acme, now=at("2026-12-03 06:00"))
    assert [(r.window, r.outcome) for r in runs] == [("acme:2026-12-02", "succeeded"), ("acme:2026-12-01", "succeeded")]
    assert [(r.window, r.outcome) for r in reconcile_job.tick(db, acme, now=at("2026-12-03 06:15"))] == [
        ("acme:2026-12-02", "done")]  # nothing left to catch up: 11-30 ran, and nothing before it ever did
    assert _outcomes(db) == {"acme:2026-11-30": ["file_missing"], "acme:2026-12-01": ["succeeded"],
                             "acme:2026-12-02": ["succeeded"]}


def test_a_new_install_does_not_catch_up_the_days_before_it_existed(db, acme, tmp_path):
    drop(tmp_path, "acme", "2026-12-02", _report("2026-12-02"))
    runs = reconcile_job.tick(db, acme, now=at("2026-12-03 06:00"))
    assert [(r.window, r.outcome) for r in runs] == [("acme:2026-12-02", "succeeded")]
    assert discrepancies_of(db, kind="FILE_MISSING") == []


def test_a_provider_with_transfers_but_no_runs_yet_is_caught_up_from_its_first_transfer(db, acme):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "10.00", reference="d1")
    first_play = at("2026-12-01 10:00")
    manager = SessionManager(db, {"acme": InMemoryProvider(name="acme")}, {"acme": SessionPolicy("EUR")},
                             clock=lambda: first_play)
    manager.open_session("P1", "acme", "10.00", now=first_play)
    runs = reconcile_job.tick(db, acme, now=at("2026-12-04 06:00"))
    assert [(r.window, r.outcome) for r in runs] == [
        ("acme:2026-12-03", "file_missing"), ("acme:2026-12-02", "file_missing"), ("acme:2026-12-01", "file_missing")]
    assert [r.window for r in reconcile_job.tick(db, acme, now=at("2026-12-04 06:15"))] == ["acme:2026-12-03"]


def test_a_caught_up_day_without_its_report_is_file_missing_once(db, acme, tmp_path):
    _ran_on(db, acme, "2026-11-30")
    drop(tmp_path, "acme", "2026-12-02", _report("2026-12-02"))
    runs = reconcile_job.run_if_due(db, acme, now=at("2026-12-03 06:00"))
    assert runs is not None and runs.window == "acme:2026-12-02" and runs.outcome == "succeeded"
    assert _outcomes(db)["acme:2026-12-01"] == ["file_missing"]
    [missing] = discrepancies_of(db, kind="FILE_MISSING", business_date=dt.date(2026, 12, 1))
    assert missing.status == "open"
    reconcile_job.tick(db, acme, now=at("2026-12-03 06:15"))
    assert _outcomes(db)["acme:2026-12-01"] == ["file_missing"]  # looked at once, visible since


def test_catching_up_is_bounded_per_tick_and_newest_first(db, acme):
    _ran_on(db, acme, "2026-12-01")
    first = reconcile_job.tick(db, acme, now=at("2026-12-10 06:00"))
    assert [r.window for r in first] == ["acme:2026-12-09", "acme:2026-12-08", "acme:2026-12-07"]
    second = reconcile_job.tick(db, acme, now=at("2026-12-10 06:15"))
    assert [r.window for r in second] == ["acme:2026-12-09", "acme:2026-12-06", "acme:2026-12-05"]
    for minute in (30, 45, 60):
        reconcile_job.tick(db, acme, now=at("2026-12-10 06:00") + dt.timedelta(minutes=minute))
    assert second[0].outcome == "file_missing"  # the current day is still looked for every tick
    assert all(_outcomes(db)[f"acme:2026-12-0{day}"] == ["file_missing"] for day in range(2, 9))  # once each
    assert "acme:2026-12-01" in _outcomes(db) and "acme:2026-11-30" not in _outcomes(db)


def test_a_day_reconciled_by_hand_is_done_for_the_retry_tick(db, acme, tmp_path):
    assert reconcile_job.run(db, acme, now=at("2026-12-02 06:00")).outcome == "file_missing"
    result = reconcile(db, acme, dt.date(2026, 12, 1), _report("2026-12-01"), now=at("2026-12-02 07:00"),
                       name="mailed.csv")
    [missing] = discrepancies_of(db, kind="FILE_MISSING", business_date=dt.date(2026, 12, 1))
    assert missing.status != "open"
    retry = reconcile_job.run_if_due(db, acme, now=at("2026-12-02 07:15"))
    assert retry is not None and retry.outcome == "done", retry.summary()
    assert f"reconciliation run {result.run_id} succeeded" in retry.summary()
    [again] = discrepancies_of(db, kind="FILE_MISSING", business_date=dt.date(2026, 12, 1))
    assert (again.status, again.times_seen) == (missing.status, missing.times_seen)
    assert _outcomes(db)["acme:2026-12-01"] == ["file_missing"]
    forced = reconcile_job.run(db, acme, dt.date(2026, 12, 1), now=at("2026-12-02 07:30"), force=True)
    assert forced.outcome == "file_missing"  # --force still looks again


def test_a_crashed_runs_row_is_finished_when_the_next_run_of_its_window_starts(db, acme, tmp_path):
    day = dt.date(2026, 12, 1)
    start(db, "reconcile", "acme:2026-12-01", "other-host:77", provider="acme", business_date=day)
    start(db, "reconcile", "acme:2026-11-30", "other-host:78", provider="acme", business_date=day - dt.timedelta(1))
    drop(tmp_path, "acme", "2026-12-01", _report("2026-12-01"))
    assert reconcile_job.run(db, acme, day, now=at("2026-12-02 06:00")).outcome == "succeeded"
    crashed, succeeded = history(db, window_key="acme:2026-12-01")
    assert (crashed.outcome, succeeded.outcome) == ("failed", "succeeded")
    assert crashed.error.startswith("crashed: ") and crashed.finished_at is not None
    assert "CRASHED" in crashed.summary
    [other] = history(db, window_key="acme:2026-11-30")
    assert (other.outcome, other.finished_at) == ("running", None)  # another window's run is not touched


def test_a_day_whose_only_run_crashed_is_caught_up(db, acme, tmp_path):
    start(db, "reconcile", "acme:2026-12-01", "other-host:77", provider="acme", business_date=dt.date(2026, 12, 1))
    drop(tmp_path, "acme", "2026-12-01", _report("2026-12-01"))
    runs = reconcile_job.tick(db, acme, now=at("2026-12-03 06:00"))
    assert [(r.window, r.outcome) for r in runs[:2]] == [("acme:2026-12-02", "file_missing"),
                                                          ("acme:2026-12-01", "succeeded")]
    assert _outcomes(db)["acme:2026-12-01"] == ["failed", "succeeded"]
