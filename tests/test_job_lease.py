"""Job leases as operators meet them: a killed job gives its sweep back at once, a live one keeps it.

The holders here are real processes (a child Python that takes the lease and
sleeps) and real databases (a SQLite file and PostgreSQL); nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from cli import cli
from jobs import holder, in_doubt, lease, scheduler
from jobs.sweep import run_sweep
from transfer_wallet.db import open_database
from transfer_wallet.models import JobLease, utc_now
from transfer_wallet.sessions import SessionManager, SweepReport

ROOT = Path(__file__).resolve().parents[1]
#: A child that takes the in-doubt lease, says so, and then does nothing until it is killed.
HOLD_LEASE = """
import sys, time
from jobs.lease import leased
from transfer_wallet.db import open_database
with leased(open_database(sys.argv[1]), "sweep:in-doubt") as mine:
    print("held" if mine else "refused", mine.holder, flush=True)
    time.sleep(600)
"""


def url_of(db) -> str:
    return db.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def lease_holder(db) -> Iterator[subprocess.Popen[str]]:
    """A live child process holding ``sweep:in-doubt`` (renewed by its heartbeat); killed at the end."""
    child = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, url_of(db)], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = child.stdout.readline().split()  # type: ignore[union-attr]
        assert line and line[0] == "held", line
        child.holder = line[1]  # type: ignore[attr-defined]
        yield child
    finally:
        child.kill()
        child.wait()


def test_a_job_killed_with_sigkill_does_not_block_the_next_run(db, lease_holder):
    lease_holder.kill()  # SIGKILL: no finally, no release
    lease_holder.wait()
    started = time.monotonic()
    run = in_doubt.run(SessionManager(db, {}, {}))
    assert not run.skipped, run.summary()
    assert run.report is not None and run.report.examined == 0
    assert time.monotonic() - started < 5  # at once, not when the 20 s expiry comes


def test_a_lease_held_by_a_live_process_is_respected_and_the_skip_names_it(db, lease_holder):
    before = utc_now()
    run = in_doubt.run(SessionManager(db, {}, {}))
    assert run.skipped and run.report is None
    assert run.lease.holder == lease_holder.holder
    assert holder.parse_holder(lease_holder.holder) == holder.Holder(
        holder.host_identity(), lease_holder.pid, holder.process_start_ticks(lease_holder.pid))
    assert before < run.lease.expires_at <= before + dt.timedelta(seconds=lease.DEFAULT_TTL_S + 1)
    assert run.summary() == (f"in-doubt: skipped, lease held by {lease_holder.holder} "
                             f"until {run.lease.expires_at.isoformat(timespec='seconds')}")


def test_the_heartbeat_keeps_a_slow_jobs_lease_past_its_ttl(db):
    with lease.leased(db, "reconcile:acme:2026-12-01", ttl_s=1.0) as mine:
        assert mine
        time.sleep(2.5)  # two and a half TTLs
        other = lease.acquire(db, "reconcile:acme:2026-12-01", ttl_s=1.0, holder="other-host:7")
        assert not other and other.holder == mine.holder
        assert other.expires_at > utc_now()
        assert not mine.lost
    assert lease.acquire(db, "reconcile:acme:2026-12-01", ttl_s=1.0, holder="other-host:7")  # released


def test_without_renewal_the_same_lease_would_have_lapsed(db):
    # The control for the test above: a 1 s lease nobody renews is free after 1 s.
    assert lease.acquire(db, "reconcile:acme:2026-12-01", ttl_s=1.0, holder="gone-host:1")
    time.sleep(1.2)
    assert lease.acquire(db, "reconcile:acme:2026-12-01", ttl_s=1.0, holder="other-host:7")


def _race(db, name: str, contenders: int) -> list[lease.Lease]:
    barrier = threading.Barrier(contenders)
    results: list[lease.Lease] = []

    def contend(index: int) -> None:
        barrier.wait()
        results.append(lease.acquire(db, name, ttl_s=30, holder=f"racer-host:{index}"))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_concurrent_acquirers_of_a_new_lease_one_wins(db):
    for round_number in range(5):
        results = _race(db, f"sweep:race-{round_number}", 2)
        winners = [r for r in results if r]
        assert len(winners) == 1
        loser = next(r for r in results if not r)
        assert loser.holder == winners[0].holder


def test_concurrent_acquirers_of_an_expired_lease_one_wins(db):
    assert lease.acquire(db, "sweep:expired", ttl_s=30, now=utc_now() - dt.timedelta(minutes=5), holder="old-host:1")
    assert len([r for r in _race(db, "sweep:expired", 4) if r]) == 1


def _dead_holder() -> str:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ticks = holder.process_start_ticks(child.pid)
    child.kill()
    child.wait()
    return str(holder.Holder(holder.host_identity(), child.pid, ticks))


def test_concurrent_takeovers_of_a_dead_holders_lease_one_wins(db):
    dead = _dead_holder()
    assert lease.acquire(db, "sweep:orphan", ttl_s=300, holder=dead)
    assert len([r for r in _race(db, "sweep:orphan", 4) if r]) == 1


def test_which_holders_count_as_dead():
    host, me = holder.host_identity(), os.getpid()
    my_ticks = holder.process_start_ticks(me)
    assert lease.holder_name() == f"{host}:{me}:{my_ticks}"
    assert not holder.holder_is_dead(lease.holder_name())
    assert not holder.holder_is_dead(f"{host}:{me}")  # an old-style row of a live process
    assert holder.holder_is_dead(_dead_holder())
    assert holder.holder_is_dead(_dead_holder().rsplit(":", 1)[0])  # old style, dead pid
    assert holder.holder_is_dead(f"{host}:{me}:{my_ticks + 1}")  # our pid, reused: another process
    assert not holder.holder_is_dead(f"elsewhere-{host}:{me}:1")  # another host: cannot know
    assert not holder.holder_is_dead("scheduler-a")  # not host:pid: respected until it expires


def test_a_holder_in_another_pid_namespace_of_the_same_host_name_is_never_taken_for_dead():
    """Two containers with host networking share a host name, not their pids (review finding)."""
    name = socket.gethostname()
    assert holder.host_identity().startswith(f"{name}@")
    dead_here = holder.parse_holder(_dead_holder())
    assert dead_here is not None and holder.holder_is_dead(str(dead_here))
    other_namespace = holder.Holder(f"{name}@1", dead_here.pid, dead_here.start_ticks)
    assert not holder.holder_is_dead(str(other_namespace))
    assert not holder.holder_is_dead(f"{name}:{dead_here.pid}")  # a row of an older version: only expiry frees it


def test_a_lease_taken_from_under_a_running_job_is_reported_lost(db):
    told_to_stop = []

    def thief(keep_going) -> SweepReport:
        assert keep_going()
        db.transaction(lambda c: c.execute(
            update(JobLease.__table__).where(JobLease.__table__.c.name == "sweep:stolen")  # type: ignore[attr-defined]
            .values(holder="thief-host:9")))
        time.sleep(0.8)  # a few heartbeats
        told_to_stop.append(not keep_going())
        return SweepReport(examined=1)

    run = run_sweep(db, "stolen", thief, ttl_s=1.0)
    assert told_to_stop == [True]  # the sweep is told to stop once the lease is gone
    assert run.lease_lost == "taken by thief-host:9"
    assert run.summary() == "stolen: examined 1, closed 0, completed 0, refunded 0, still_in_doubt 0, stuck 0, " \
                            "errors 0; LEASE LOST during the run: taken by thief-host:9"
    assert lease.current(db, "sweep:stolen").holder == "thief-host:9"  # our release did not free the thief's


def test_a_lease_that_cannot_be_renewed_for_a_whole_ttl_is_lost(db, tmp_path):
    mine = lease.acquire(db, "sweep:cut-off", ttl_s=1.0)
    unreachable = open_database(f"sqlite:///{tmp_path / 'no-such-folder' / 'ledger.db'}")
    heartbeat = lease.Heartbeat(unreachable, mine)
    heartbeat.start()
    time.sleep(0.3)
    assert not mine.lost  # failures within the TTL are tolerated
    time.sleep(0.9)
    assert mine.lost and mine.lost_reason is not None and "not renewed" in mine.lost_reason
    heartbeat.stop()


def test_the_renewal_interval_is_under_a_third_of_the_ttl():
    assert lease.renewal_interval_s(lease.DEFAULT_TTL_S) < lease.DEFAULT_TTL_S / 3
    assert lease.DEFAULT_TTL_S <= 30


def test_a_skipped_manual_run_names_the_holder_and_expiry(db):
    held = lease.acquire(db, "sweep:in-doubt", ttl_s=60, holder="sched-host:4242")
    until = held.expires_at.isoformat(timespec="seconds")
    runner = CliRunner()
    text = runner.invoke(cli, ["--db", url_of(db), "jobs", "run", "in-doubt"])
    assert (text.exit_code, text.output) == (0, f"in-doubt: skipped, lease held by sched-host:4242 until {until}\n")
    document = json.loads(runner.invoke(cli, ["--db", url_of(db), "--json", "jobs", "run", "in-doubt"]).output)
    assert document["skipped"] is True and document["holder"] == "sched-host:4242"
    assert dt.datetime.fromisoformat(document["expires_at"]) == held.expires_at


def test_the_scheduler_logs_one_line_per_run(db, caplog):
    lease.acquire(db, "sweep:in-doubt", ttl_s=60, holder="sched-host:4242")
    built = scheduler.build(SessionManager(db, {}, {}))
    with caplog.at_level(logging.INFO, logger="transfer_wallet.jobs"):
        built.get_job("in-doubt").func()
        built.get_job("timeouts").func()
    lines = [record.getMessage() for record in caplog.records if record.name == "transfer_wallet.jobs"]
    assert len(lines) == 2
    assert lines[0].startswith("in-doubt: skipped, lease held by sched-host:4242 until ")
    assert lines[1] == "timeouts: examined 0, closed 0, completed 0, refunded 0, still_in_doubt 0, stuck 0, errors 0"


def test_a_scheduled_run_that_fails_logs_one_error_line(tmp_path, caplog):
    unreachable = open_database(f"sqlite:///{tmp_path / 'no-such-folder' / 'ledger.db'}")
    built = scheduler.build(SessionManager(unreachable, {}, {}))
    with caplog.at_level(logging.INFO, logger="transfer_wallet.jobs"):
        built.get_job("in-doubt").func()
    records = [r for r in caplog.records if r.name == "transfer_wallet.jobs"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("ERROR", "in-doubt: failed: OperationalError: (sqlite3.OperationalError) unable to open database file")]
