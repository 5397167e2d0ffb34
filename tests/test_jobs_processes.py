"""The scheduler as real processes: two schedulers share the windows, a killed run is finished by the next,
SIGTERM lets the running job finish. Short intervals, real databases, real signals; each test < 30 s.

A report "arriving slowly" is a FIFO in the drop folder: the run opens it and
waits there, halfway (lease taken, history row written), until the test writes it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs import reconcile as reconcile_job
from tests.jobs_support import discrepancies_of, drop, history, providers_file, report_bytes
from transfer_wallet.config import load_providers
from transfer_wallet.models import utc_now

ROOT = Path(__file__).resolve().parents[1]
FAST = 'timeouts_every_s = 3600\nin_doubt_every_s = 3600\nlease_ttl_s = 2\n'


def url_of(db) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def tw(db, providers: Path, *args: str) -> subprocess.Popen[str]:
    """``tw --providers FILE ARGS`` as a child process on ``db``."""
    env = {**os.environ, "TW_DATABASE_URL": url_of(db)}
    return subprocess.Popen([sys.executable, "-c", "from cli import cli; cli()", "--providers", str(providers), *args],
                            cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition, timeout_s: float = 25.0, raise_error: bool = True):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    if raise_error:
        raise AssertionError("condition not reached in time")
    return None


def yesterday() -> str:
    return (utc_now().date() - dt.timedelta(days=1)).isoformat()


def slow_report(folder: Path, name: str, day: str) -> Path:
    path = folder / "drop" / f"{name}-{day}.csv"
    os.mkfifo(path)
    return path


def feed(fifo: Path, content: bytes) -> threading.Thread:
    """Write ``content`` into the FIFO (blocks until the reader has it open) on a thread."""
    thread = threading.Thread(target=fifo.write_bytes, args=(content,), daemon=True)
    thread.start()
    return thread


def test_two_schedulers_run_each_window_exactly_once(pg_db, tmp_path):
    names = ("acme", "betsul", "chance", "dorado")
    providers = providers_file(tmp_path, names, at="00:00", retry_every_s=1, retry_until="23:59:59", jobs=FAST)
    day = yesterday()
    for tx, name in enumerate(names[:3]):
        drop(tmp_path, name, day, report_bytes(day, (f"{name}-x{tx}", "P9", "10.00")))
    # dorado's report never comes: FILE_MISSING, looked for again every second by both schedulers.
    schedulers = [tw(pg_db, providers, "jobs", "schedule") for _ in range(2)]
    try:
        reached = wait_for(lambda: len(history(pg_db, outcome="succeeded")) >= 3
                           and len(history(pg_db, provider="dorado")) >= 4, raise_error=False)
        time.sleep(2)  # more retry ticks: a succeeded window must not run again
    finally:
        for child in schedulers:
            child.send_signal(signal.SIGTERM)
        outputs = [child.communicate(timeout=30) for child in schedulers]
    assert reached, outputs
    assert [child.returncode for child in schedulers] == [0, 0], outputs
    for name in names[:3]:
        [succeeded] = history(pg_db, provider=name)
        assert (succeeded.outcome, succeeded.window_key) == ("succeeded", f"{name}:{day}")
        [found] = discrepancies_of(pg_db, provider=name)
        assert (found.kind, found.times_seen) == ("MISSING_IN_LEDGER", 1)
    tries = history(pg_db, provider="dorado")
    assert {r.outcome for r in tries} == {"file_missing"}
    for earlier, later in zip(tries, tries[1:]):
        assert earlier.finished_at <= later.started_at  # never two runs of one window at once
    [missing] = discrepancies_of(pg_db, provider="dorado")
    assert (missing.kind, missing.times_seen) == ("FILE_MISSING", len(tries))
    log = outputs[0][1] + outputs[1][1]
    assert log.count(f"reconcile acme:{day}: run ") == 1  # one log line per run


def test_a_run_killed_halfway_is_completed_by_the_next_without_duplicates(db, tmp_path):
    providers = providers_file(tmp_path, jobs=FAST)
    acme = load_providers(providers)["acme"]
    day = yesterday()
    assert reconcile_job.run(db, acme).outcome == "file_missing"
    slow_report(tmp_path, "acme", day)
    child = tw(db, providers, "jobs", "run", "reconcile", "--provider", "acme", "--date", day)
    try:
        wait_for(lambda: [r for r in history(db, provider="acme") if r.outcome == "running"])
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    (tmp_path / "drop" / f"acme-{day}.csv").unlink()
    drop(tmp_path, "acme", day, report_bytes(day, ("acme-x1", "P9", "10.00")))
    time.sleep(2.1)  # the killed holder's lease lapses (a dead holder on this host is even taken over at once)
    finished = reconcile_job.run(db, acme)
    assert finished.outcome == "succeeded", finished.summary()
    rows = history(db, provider="acme")
    assert [r.outcome for r in rows] == ["file_missing", "failed", "succeeded"]
    assert rows[1].error.startswith("crashed: ") and rows[1].finished_at is not None  # the killed run, finished
    assert sorted((r.kind, r.status) for r in discrepancies_of(db)) == [
        ("FILE_MISSING", "cleared"), ("MISSING_IN_LEDGER", "open")]


def test_sigterm_during_a_run_lets_it_finish_and_record_itself(db, tmp_path):
    providers = providers_file(tmp_path, at="00:00", retry_every_s=1, retry_until="23:59:59", jobs=FAST)
    day = yesterday()
    fifo = slow_report(tmp_path, "acme", day)
    child = tw(db, providers, "jobs", "schedule")
    try:
        wait_for(lambda: history(db, provider="acme", outcome="running"))
        child.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        feed(fifo, report_bytes(day, ("acme-x1", "P9", "10.00"))).join(timeout=10)
        _, stderr = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, stderr
    [run] = history(db, provider="acme")
    assert run.outcome == "succeeded" and run.finished_at is not None
    assert "SIGTERM received, waiting for the running jobs to finish" in stderr
    assert stderr.index("SIGTERM received") < stderr.index(f"reconcile acme:{day}: run ")
