"""Session benchmarks (``tw bench sessions``).

1. **Full sessions per second** against the simulator over HTTP: open (transfer-in),
   10 rounds played at the simulator and mirrored, close (transfer-out). One
   client process; the simulator runs in its own process (no shared GIL).
2. **Ledger-side session operations per second** with an in-process provider
   (no HTTP): one *operation* is a whole open + close, i.e. the lock, the
   confirmation, the close intent and the settlement, four committed database
   transactions (on PostgreSQL four calls of the session step functions of
   migrations 0008 and 0010, in autocommit on the driver connection;
   ``TW_SESSION_SERVER_STEPS=0`` measures the Python steps instead). 1 and 4 worker processes, each with its own players.
   On PostgreSQL, pgbench TPC-B-like runs in the same command, in alternating
   rounds with ours (pgbench, ours, pgbench, ours ...): medians, spreads, ratio.

Everything runs on scratch databases beside ``--db`` (see ``_harness``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import secrets
import tempfile
import time
import uuid
from pathlib import Path

from transfer_wallet import migrations
from transfer_wallet.bench._harness import (
    FUNDING,
    KEY_ID,
    RoundsResult,
    compare_rounds,
    init_pgbench,
    pgbench_side,
    rate_of,
    run_until,
    run_workers,
    scratch_database,
    simulator_process,
)
from transfer_wallet.config import ProviderConfig
from transfer_wallet.db import normalise_url, open_database
from transfer_wallet.errors import ConfigError
from transfer_wallet.money import Money, currency
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

ROUNDS_PER_SESSION = 10


def _fund(url: str, players: list[str], currency_code: str = "EUR") -> None:
    db = open_database(url)
    try:
        migrations.upgrade(db)
        wallet = Wallet(db)
        for player in players:
            wallet.create_player(player, currency_code)
            wallet.deposit(player, FUNDING, reference=f"bench-fund-{player}")
    finally:
        db.dispose()


def _ledger_session_worker(url: str, worker: int, seconds: float, start_at: float, queue: multiprocessing.Queue) -> None:
    from transfer_wallet.providers.fake import InMemoryProvider

    db = open_database(url, pool_size=1)
    manager = SessionManager(db, {"bench": InMemoryProvider(name="bench")}, {"bench": SessionPolicy("EUR")})
    player = f"bench-s{worker}"
    Wallet(db).balance(player)
    amount = Money(100, currency("EUR"))

    def step(_n: int) -> None:
        manager.close_session(manager.open_session(player, "bench", amount).id)

    done = run_until(start_at, seconds, step)
    db.dispose()
    queue.put(done)


def measure_ledger_sessions(url: str, clients: int, seconds: float) -> tuple[int, float]:
    """(open+close done, seconds) with ``clients`` worker processes on a funded database."""
    return run_workers(_ledger_session_worker, lambda n: (url, n), clients, seconds)


def run_ledger_sessions(url: str, client_counts: list[int], seconds: float, rounds: int = 3) -> list[RoundsResult]:
    """Ledger-side open+close per second (in-process provider) in alternating rounds with pgbench
    (PostgreSQL; SQLite has no baseline here); scratch databases only."""
    if not client_counts or any(c < 1 or c > 64 for c in client_counts):
        raise ConfigError("--clients takes 1..64 per count, e.g. 1,4")
    if not 1 <= seconds <= 3600:
        raise ConfigError("--seconds must be between 1 and 3600")
    postgres = not normalise_url(url).startswith("sqlite")
    scale = max(client_counts)
    results: list[RoundsResult] = []
    with scratch_database(url) as ledger_url, contextlib.ExitStack() as stack:
        _fund(ledger_url, [f"bench-s{n}" for n in range(scale)])
        pgbench_url = stack.enter_context(scratch_database(url)) if postgres else None
        if pgbench_url:
            init_pgbench(pgbench_url, scale=scale)
        for clients in client_counts:
            sides = {"ours": rate_of(measure_ledger_sessions, ledger_url, clients, seconds)}
            if pgbench_url:
                sides = {"pgbench": pgbench_side(pgbench_url, clients, seconds, scale=scale), **sides}
            results.append(compare_rounds(clients, seconds, sides, rounds))
    return results


def run_full_sessions(url: str, config: ProviderConfig, sessions: int, seed: int = 1) -> dict[str, float]:
    """Full sessions per second over HTTP against a simulator in its own process."""
    from transfer_wallet.play import PlayMirror
    from transfer_wallet.providers.signing import KeyRing
    from transfer_wallet.simulator.admin import SimulatorAdmin

    if not 1 <= sessions <= 100_000:
        raise ConfigError("--sessions must be 1..100000")
    secret = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="tw-bench-sim-") as folder, scratch_database(url) as ledger_url:
        players = [f"bench-f{n}" for n in range(20)]
        _fund(ledger_url, players, config.currency)
        with simulator_process(config, secret, Path(folder) / "sim.db", seed) as sim_url:
            admin = SimulatorAdmin.connect(config, base_url=sim_url, keyring=KeyRing.from_secrets({KEY_ID: secret}))
            client = admin.provider
            db = open_database(ledger_url, pool_size=1)
            manager = SessionManager(db, {config.name: client}, {config.name: SessionPolicy.from_config(config)})
            mirror = PlayMirror(db)
            amount = Money(10 * 10 ** currency(config.currency).exponent, currency(config.currency))
            rounds = 0
            started = time.perf_counter()
            for number in range(sessions):
                player = players[number % len(players)]
                session = manager.open_session(player, config.name, amount, key=f"bench-{uuid.uuid4().hex}")
                for item in admin.play(player, ROUNDS_PER_SESSION, seed=seed + number):
                    mirror.mirror_round(session.id, item)
                    rounds += 1
                manager.close_session(session.id)
            elapsed = time.perf_counter() - started
            admin.close()
            db.dispose()
    return {"sessions": sessions, "rounds": rounds, "seconds": round(elapsed, 2),
            "sessions_per_s": round(sessions / elapsed, 1), "ms_per_session": round(elapsed / sessions * 1000, 2)}
