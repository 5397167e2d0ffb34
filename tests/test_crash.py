"""Crash: ``tw simulate`` killed with SIGKILL at random moments, restarted, then resolved by the operator.

One ``tw provider serve acme`` process lives through the whole test. ``tw
simulate --url`` runs against it with faults (and a little latency, which widens
the window between "the provider applied the transfer" and "we recorded it") and
is SIGKILLed a seeded random 0.3-2.0 s after its first write; each restart is a new run with new
players. The sequence:

1. two killed runs, then the operator's recovery through the CLI only: ``tw jobs
   run in-doubt`` and ``tw jobs run timeouts`` with an advancing ``--now`` until
   ``tw session list`` shows nothing open and nothing in doubt;
2. two more killed runs, then a run that completes (its in-run jobs sweep the
   whole database, so it finishes what those kills left);
3. the operator's jobs again, for whatever is left;
4. the audit (``_crash_support.audit``): for every player main + locked + game
   balance == deposits + round nets, every transfer agrees with the simulator's
   idempotency store (no transfer-in applied twice, no payout the ledger does
   not know), no game balance left behind, each player funded at most once,
   ``tw ledger check`` clean.

Both recovery paths therefore see real crash leftovers (a run that completes
first would otherwise sweep everything and leave the operator nothing to do).
The client of every process is configured with 2 attempts (acme's file says 4)
so that more transfers end in doubt.

Reproduce a failure with the seed printed in its message::

    TW_CRASH_SEED=1234 pytest tests/test_crash.py -s
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import func, select

from _crash_support import (
    FINAL,
    SECRETS,
    STATUS_FAULTS,
    TRANSFER_FAULTS,
    TW,
    RequestLog,
    SimulatorProcess,
    audit,
    run_tw,
    tw_env,
    tw_json,
)
from transfer_wallet.db import open_database
from transfer_wallet.models import GameSession, Player, Transfer

SEED = int(os.environ.get("TW_CRASH_SEED", "20261124"))
KILLS = int(os.environ.get("TW_CRASH_KILLS", "4"))
FUNDING_MINOR = 50000
#: The soak's faults plus latency on transfers and play: a kill then often lands while the
#: simulator holds a request it is about to apply.
FAULTS = TRANSFER_FAULTS + STATUS_FAULTS + ("transfer:latency=0.4:40", "play:latency=0.3:40")
MAX_OPERATOR_PASSES = 20


@pytest.fixture
def simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorProcess]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "sim"
    folder.mkdir()
    process = SimulatorProcess(folder, seed=SEED, max_attempts=2)
    try:
        yield process
    finally:
        process.stop()


def _snapshot(url: str) -> dict[str, Any]:
    """Players, sessions by state and unfinished transfers in the ledger database right now."""
    database = open_database(url)
    try:
        with database.engine.connect() as connection:
            players = connection.execute(select(func.count()).select_from(Player.__table__)).scalar_one()
            sessions = Counter(dict(connection.execute(
                select(GameSession.__table__.c.status, func.count()).group_by(GameSession.__table__.c.status)).all()))
            transfers = Counter(dict(connection.execute(
                select(Transfer.__table__.c.status, func.count()).group_by(Transfer.__table__.c.status)).all()))
    finally:
        database.dispose()
    return {"players": players, "sessions": sessions, "transfers": transfers}


def _count_players(url: str) -> int:
    database = open_database(url)
    try:
        with database.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(Player.__table__)).scalar_one()
    finally:
        database.dispose()


def _not_final(snapshot: dict[str, Any]) -> int:
    return sum(n for status, n in snapshot["sessions"].items() if status not in FINAL)


def _unfinished(snapshot: dict[str, Any]) -> int:
    return snapshot["transfers"]["pending"] + snapshot["transfers"]["in_doubt"]


def _simulate_args(url: str, sim_url: str, *, players: int, sessions: int, seed: int) -> list[str]:
    return ["--db", url, "--json", "simulate", "--provider", "acme", "--url", sim_url, "--players", str(players),
            "--sessions", str(sessions), "--seed", str(seed), "--rounds", "5", "--faults", ",".join(FAULTS)]


def _kill_runs(url: str, simulator: SimulatorProcess, env: dict[str, str], rng: random.Random, count: int,
               why: str) -> list[dict[str, Any]]:
    """``count`` runs, each SIGKILLed after a seeded delay (each far too long to finish before its kill)."""
    kills: list[dict[str, Any]] = []
    before = _snapshot(url)
    for _ in range(count):
        run_seed, delay = rng.randrange(1, 2**31), rng.uniform(0.3, 2.0)
        process = subprocess.Popen([*TW, *_simulate_args(url, simulator.url, players=4, sessions=400, seed=run_seed)],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The delay counts from the run's first write (its first player), not from the process start,
        # so that a slow interpreter start on a busy machine does not turn the kill into a no-op.
        deadline = time.monotonic() + 60
        while _count_players(url) == before["players"]:
            assert process.poll() is None, f"a run exited (code {process.returncode}) before creating a player {why}"
            assert time.monotonic() < deadline, f"a run created no player in 60 s {why}"
            time.sleep(0.02)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=30)
        assert code == -signal.SIGKILL, f"a run ended by itself (exit {code}) before its kill at {delay:.2f} s {why}"
        after = _snapshot(url)
        kills.append({
            "delay_s": round(delay, 2), "seed": run_seed,
            "new_players": after["players"] - before["players"],
            "new_sessions": sum(after["sessions"].values()) - sum(before["sessions"].values()),
            "left_open": _not_final(after) - _not_final(before),
            "left_unfinished_transfers": _unfinished(after) - _unfinished(before),
        })
        before = after
    return kills


def _operator_resolves(url: str, env: dict[str, str], now: dt.datetime, rng: random.Random,
                       why: str) -> tuple[list[dict[str, Any]], dt.datetime]:
    """``tw jobs run in-doubt`` and ``timeouts`` with an advancing ``--now`` until ``tw session list``
    shows nothing open and nothing in doubt; returns what each pass did and the clock after.

    The two jobs run in a seeded random order each pass, as two schedules would: the timeout job
    retrying a close before the in-doubt job has settled its transfer-out is a case of its own."""
    passes: list[dict[str, Any]] = []
    for _ in range(MAX_OPERATOR_PASSES):
        order = ["in-doubt", "timeouts"] if rng.random() < 0.5 else ["timeouts", "in-doubt"]
        reports = {name: tw_json("--db", url, "jobs", "run", name, "--now", now.isoformat(), env=env) for name in order}
        in_doubt, timeouts = reports["in-doubt"], reports["timeouts"]
        assert not in_doubt["skipped"] and not timeouts["skipped"], (in_doubt, timeouts)
        passes.append({"order": order[0], "in_doubt": {k: in_doubt[k] for k in ("examined", "completed", "refunded", "still_in_doubt")},
                       "timeouts": {k: timeouts[k] for k in ("examined", "closed", "stuck")},
                       "errors": in_doubt["errors"] + timeouts["errors"]})
        now += dt.timedelta(days=1)
        listed = tw_json("--db", url, "session", "list", "--limit", "10000", env=env)["sessions"]
        still_open = [(s["session_id"], s["status"], s["in_doubt"]) for s in listed if s["status"] not in FINAL]
        if still_open:
            continue
        doubtful = tw_json("--db", url, "session", "list", "--in-doubt", "--limit", "10000", env=env)["sessions"]
        assert doubtful == [], f"final sessions listed as in doubt: {doubtful[:3]} {why}"
        return passes, now
    pytest.fail(f"still open after {MAX_OPERATOR_PASSES} operator passes: {still_open[:5]} {passes[-3:]} {why}")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sigkilled_simulations_lose_nothing_and_double_nothing(
    backend: str, new_database_url: Callable[[str], str], simulator: SimulatorProcess
) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    url = new_database_url(backend)
    env = tw_env({"TW_PROVIDERS_FILE": str(simulator.providers_file)})
    why = f"[TW_CRASH_SEED={SEED}, backend {backend}]"
    assert run_tw("--db", url, "db", "upgrade", env=env).returncode == 0
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=30)

    # 1. Killed runs, then the operator's recovery through the CLI only.
    first_kills = _kill_runs(url, simulator, env, rng, KILLS // 2, why)
    left_first = _snapshot(url)
    first_passes, now = _operator_resolves(url, env, now, rng, why)

    # 2. More killed runs, then a run that completes: its own in-run jobs sweep the whole database,
    #    so it finishes what these kills left behind.
    second_kills = _kill_runs(url, simulator, env, rng, KILLS - KILLS // 2, why)
    left_second = _snapshot(url)
    kills = first_kills + second_kills
    assert sum(k["new_sessions"] for k in kills) > 0, f"no kill landed after the first session: {kills} {why}"
    assert _not_final(left_first) + _unfinished(left_first) + _not_final(left_second) + _unfinished(left_second) > 0, \
        f"every kill left everything final; nothing was tested: {kills} {why}"
    done = run_tw(*_simulate_args(url, simulator.url, players=4, sessions=40, seed=rng.randrange(1, 2**31)), env=env)
    assert done.stdout, f"the final run printed nothing (exit {done.returncode}) {why}\n{done.stderr[-3000:]}"
    final = json.loads(done.stdout)
    assert done.returncode == 0 and final["conserved"] and final["ledger_clean"], f"final run {final} {why}"
    after_final = _snapshot(url)

    # 3. The operator again, for whatever is left.
    last_passes, now = _operator_resolves(url, env, now, rng, why)

    # 4. Nothing lost, nothing doubled.
    found = audit(url, simulator, funding_minor=FUNDING_MINOR)
    figures = {
        "kills": kills,
        "left_by_first_kills": {"sessions": dict(left_first["sessions"]), "transfers": dict(left_first["transfers"])},
        "operator_recovery": first_passes,
        "left_by_second_kills": {"sessions": dict(left_second["sessions"]), "transfers": dict(left_second["transfers"])},
        "final_run": {k: final[k] for k in ("sessions", "by_status", "failures", "resolution_passes")},
        "after_final_run": {"sessions": dict(after_final["sessions"]), "transfers": dict(after_final["transfers"])},
        "operator_last": last_passes, "audit": found.figures(),
    }
    assert found.problems == [], f"{why}\n" + "\n".join(found.problems[:30]) + f"\n{figures}"
    log = RequestLog.read(simulator.log_path)
    applied, gone = log.transfer_applications()
    sim_applied = sum(v for k, v in found.sim_transfers.items() if k.endswith(":APPLIED"))
    assert applied <= sim_applied <= applied + gone, \
        f"applications {applied} (+{gone} unanswered) vs store {found.sim_transfers} {why}"
    injected = log.faults({"transfer_in", "transfer_out"})
    assert injected["500"] and injected["429"] and injected["lost"], f"faults not injected: {injected} {why}"
    ledger = tw_json("--db", url, "ledger", "check", env=env)
    assert ledger["clean"] is True, f"{ledger['findings']} {why}"
    print(f"\ncrash {why}: {time.monotonic() - started:.1f} s; faults on transfers {dict(injected)}, on transfer_status "
          f"{dict(log.faults({'transfer_status'}))} of {log.count('transfer_status')}; {figures}")
