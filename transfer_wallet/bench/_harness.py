"""What the benchmarks share: results, alternating rounds, scratch databases, timed worker processes, pgbench, a simulator process.

Sides that are compared run in alternating rounds (baseline, ours, baseline, ours ...)
and are reported by their median and spread: on a shared, noisy machine one run
after the other would credit one side with the other's quiet minute.

Every benchmark runs on scratch databases beside ``--db`` (a new database on the
same PostgreSQL server, or a temporary directory beside the SQLite file) that are
removed afterwards; worker processes start together at a common instant and count
what they finish before a deadline. The simulator for the HTTP benchmarks runs in
its own process (no interpreter lock shared with the client) with a throwaway key.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy.engine import make_url

from transfer_wallet.config import ProviderConfig
from transfer_wallet.db import normalise_url
from transfer_wallet.errors import ConfigError
from transfer_wallet.providers.signing import KeyRing

#: Every worker starts with this much (major units): far more than a run can lock.
FUNDING = "1000000.00"


@dataclass(frozen=True, slots=True)
class Figures:
    """One side's rate over alternating rounds: every round's figure, their median and spread."""

    per_s: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.per_s) if self.per_s else 0.0

    @property
    def spread(self) -> float:
        """(max - min) / median: 0.1 means the rounds lay within 10 % of the median."""
        return (max(self.per_s) - min(self.per_s)) / self.median if self.median else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"median_per_s": round(self.median, 1), "spread": round(self.spread, 3),
                "rounds_per_s": [round(value, 1) for value in self.per_s]}


def alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, Figures]:
    """Run each side once per round, in turn (a, b, a, b ...), so that load drifting on a
    shared machine falls on every side alike; each side's figures over the rounds."""
    if not 1 <= rounds <= 100:
        raise ConfigError("--rounds must be 1..100")
    measured: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, measure in sides.items():
            measured[name].append(measure())
    return {name: Figures(tuple(values)) for name, values in measured.items()}


def ratio(ours: Figures, baseline: Figures) -> float:
    """Median over median (0 when the baseline has no figure)."""
    return ours.median / baseline.median if baseline.median else 0.0


@dataclass(frozen=True, slots=True)
class RoundsResult:
    """At one client count: our figures and each baseline's, over the same alternating rounds."""

    clients: int
    seconds: float
    ours: Figures
    baselines: dict[str, Figures]

    def as_dict(self) -> dict[str, Any]:
        """A flat row for the table and ``--json``: medians, spreads and ratios (median over median)."""
        row: dict[str, Any] = {"clients": self.clients, "rounds": len(self.ours.per_s), "seconds": self.seconds,
                               "ours_per_s": round(self.ours.median, 1), "ours_spread": round(self.ours.spread, 3)}
        for name, figures in self.baselines.items():
            row[f"{name}_per_s"] = round(figures.median, 1)
            row[f"{name}_spread"] = round(figures.spread, 3)
            row[f"ratio_to_{name}"] = round(ratio(self.ours, figures), 3)
        row["per_round"] = {"ours": list(self.ours.as_dict()["rounds_per_s"]),
                            **{name: f.as_dict()["rounds_per_s"] for name, f in self.baselines.items()}}
        return row


def compare_rounds(clients: int, seconds: float, sides: dict[str, Callable[[], float]], rounds: int) -> RoundsResult:
    """``alternate`` the ``sides`` (one of them named ``ours``; the rest are baselines, in this order)."""
    figures = alternate(sides, rounds)
    ours = figures.pop("ours")
    return RoundsResult(clients, seconds, ours, figures)


def rate_of(measure: Callable[..., tuple[float, float]], *args: Any) -> Callable[[], float]:
    """A side for ``alternate``: run ``measure(*args)`` -> (count, seconds), return count per second."""
    def side() -> float:
        count, elapsed = measure(*args)
        return count / elapsed
    return side


def pgbench_side(url: str, clients: int, seconds: float, *, scale: int) -> Callable[[], float]:
    """A side for ``alternate``: pgbench's TPC-B-like transactions per second on ``url``."""
    return lambda: measure_pgbench(url, clients, seconds, scale=scale)


def table_columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """``(baselines, columns)`` of ``RoundsResult`` rows: ours, then each baseline with its ratio."""
    baselines = [key[: -len("_per_s")] for key in rows[0] if key.endswith("_per_s") and key != "ours_per_s"] if rows else []
    columns = ["clients", "ours_per_s", "ours_spread"]
    for name in baselines:
        columns += [f"{name}_per_s", f"{name}_spread", f"ratio_to_{name}"]
    return baselines, columns


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB, its own: ``VmHWM`` of ``/proc/self/status``.

    Not ``getrusage().ru_maxrss``: Linux carries that across fork and exec, so a child
    spawned by a parent that once held 1.8 GB reports 1.8 GB before it has done anything
    (the reconcile benchmark's parent builds the whole test day in memory). Elsewhere, where
    there is no ``/proc``, ``ru_maxrss`` is the fallback.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- scratch databases ------------------------------------------------------------------------


def _pg_admin(url: str, statement: str) -> None:
    import psycopg

    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host or "127.0.0.1", port=parsed.port or 5432, user=parsed.username,
        password=parsed.password, dbname=parsed.database or "postgres", autocommit=True, connect_timeout=10,
    ) as connection:
        connection.execute(statement)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A fresh, empty database beside ``url`` (same server or same directory), removed after."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database or ""
        directory = Path(database).resolve().parent if database and database != ":memory:" else Path(tempfile.gettempdir())
        folder = Path(tempfile.mkdtemp(prefix="tw-bench-", dir=directory))
        try:
            yield f"sqlite:///{folder / 'bench.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"tw_bench_{uuid.uuid4().hex[:10]}"
    _pg_admin(url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        _pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- timed worker processes -------------------------------------------------------------------


def run_until(start_at: float, seconds: float, step: Callable[[int], None]) -> int:
    """Wait for the common start, then call ``step(n)`` until ``seconds`` are over; the count."""
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    count = 0
    while time.time() < deadline:
        step(count)
        count += 1
    return count


def _when_ready(target: Callable[..., None], ready: Any, clients: int, args: tuple[Any, ...],
                seconds: float, queue: multiprocessing.Queue) -> None:
    """Child process: every worker has imported its code, then all start together."""
    ready.wait(timeout=START_TIMEOUT_S * 4)
    start_at = time.time() + 1.0 + 0.2 * clients  # time for each to connect first
    target(*args, seconds, start_at, queue)


def run_workers(
    target: Callable[..., None], args_for: Callable[[int], tuple[Any, ...]], clients: int, seconds: float
) -> tuple[int, float]:
    """``(finished, seconds)``: ``clients`` spawned ``target(*args_for(n), seconds, start_at, queue)`` summed.

    The common start is set only once every process has imported its code (a barrier), so a
    slow start on a loaded machine does not eat into the measured window.
    """
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = context.Queue()
    ready = context.Barrier(clients)
    processes = [context.Process(target=_when_ready, args=(target, ready, clients, args_for(n), seconds, queue))
                 for n in range(clients)]
    for process in processes:
        process.start()
    total = sum(queue.get(timeout=seconds + 300) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    return total, seconds


# -- PostgreSQL baseline: pgbench TPC-B-like ---------------------------------------------------


def _pgbench_env_args(url: str) -> tuple[list[str], dict[str, str]]:
    parsed = make_url(url)
    args = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432)]
    if parsed.username:
        args += ["-U", parsed.username]
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return args, env


def measure_pgbench(url: str, clients: int, seconds: float, *, scale: int) -> float:
    """pgbench TPC-B-like tps on ``url`` (initialised at ``scale`` if not yet)."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise ConfigError("pgbench not found on PATH (Debian: apt-get install postgresql-client)")
    args, env = _pgbench_env_args(url)
    database = make_url(url).database or "postgres"
    output = subprocess.run(
        [pgbench, *args, "-n", "-c", str(clients), "-j", str(clients), "-T", str(max(1, round(seconds))), database],
        capture_output=True, text=True, env=env, check=False,
    )
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output.stdout)
    if output.returncode != 0 or match is None:
        raise ConfigError(f"pgbench failed: {(output.stderr or output.stdout).strip().splitlines()[-1:]}")
    return float(match.group(1))


def init_pgbench(url: str, scale: int) -> None:
    """Initialise pgbench's tables at ``scale`` in the database of ``url``."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise ConfigError("pgbench not found on PATH (Debian: apt-get install postgresql-client)")
    args, env = _pgbench_env_args(url)
    database = make_url(url).database or "postgres"
    result = subprocess.run([pgbench, *args, "-i", "-q", "-s", str(scale), database], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise ConfigError(f"pgbench -i failed: {result.stderr.strip().splitlines()[-1:]}")


# -- a simulator in its own process ------------------------------------------------------------

#: Key id of the throwaway signing key shared by a benchmark's client and its simulator.
KEY_ID = "bench"
START_TIMEOUT_S = 30.0


def _serve(config: ProviderConfig, secret: bytes, store: str, seed: int, ready: Connection) -> None:
    """Child process: run the simulator and report its URL."""
    from transfer_wallet.simulator import FaultPlan, SimulatorServer

    keyring = KeyRing.from_secrets({KEY_ID: secret})
    server = SimulatorServer(config, store, port=0, keyring=keyring, faults=FaultPlan(), seed=seed)
    ready.send(server.url)
    ready.close()
    server.serve_forever(poll_interval=0.05)


@contextlib.contextmanager
def simulator_process(config: ProviderConfig, secret: bytes, store: Path, seed: int) -> Iterator[str]:
    """A simulator (key ``KEY_ID`` = ``secret``) in a child process for the duration of the block; yields its URL."""
    context = multiprocessing.get_context("spawn")  # no inherited threads or locks
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(config, secret, str(store), seed, sender), daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not receiver.poll(0.1):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the benchmark simulator did not start (exit code {process.exitcode})")
        yield str(receiver.recv())
    finally:
        process.terminate()
        process.join(5)
