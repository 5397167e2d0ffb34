"""Shared by ``test_soak.py`` and ``test_crash.py``: real ``tw`` processes and an outside-in money audit.

Nothing here trusts ``tw simulate``'s own verdict. The audit reads the ledger
database (postings, sessions, transfers), the simulator over HTTP (game
balances, rounds) and the simulator's own SQLite store (its idempotency table),
and the simulator's request log on stderr (which faults it really injected).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import selectors
import signal
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from transfer_wallet.config import load_providers
from transfer_wallet.db import open_database
from transfer_wallet.models import Account, Entry, GameSession, Player, Posting, Transfer
from transfer_wallet.providers.http import HttpProvider
from transfer_wallet.simulator.admin import SimulatorAdmin

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PROVIDERS = ROOT / "sample_data" / "providers.toml"
TW = [sys.executable, "-m", "cli"]
#: Throwaway secrets for the acme keys; the simulator and every client read them from the environment.
SECRETS = {
    "TW_ACME_SECRET_2026_09": "soak-crash-old-secret-5521",
    "TW_ACME_SECRET_2026_11": "soak-crash-new-secret-8830",
    "TW_BETSUL_SECRET_K1": "soak-crash-betsul-secret-1177",
}
#: The issue's fault mix on both transfer directions (429 with Retry-After: 0 so nobody sleeps 1 s),
#: plus faults on transfer_status so that the in-doubt job has to retry its own questions.
TRANSFER_FAULTS = ("transfer:500=0.2", "transfer:429=0.1:0", "transfer:lost=0.05")
STATUS_FAULTS = ("transfer_status:500=0.2", "transfer_status:429=0.1:0")
FINAL = ("closed", "failed")


def tw_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **SECRETS, **(extra or {})}
    env.pop("TW_DATABASE_URL", None)  # every call names its --db
    return env


def run_tw(*args: str, env: dict[str, str], timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``tw ARGS`` as a child process; returns it finished (never raises on a non-zero exit)."""
    return subprocess.run([*TW, *args], check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def tw_json(*args: str, env: dict[str, str], timeout: float = 300, expect: int | None = 0) -> Any:
    """``tw --json ARGS``: the document it printed (asserting the exit code unless ``expect`` is None)."""
    done = run_tw("--json", *args, env=env, timeout=timeout)
    if expect is not None:
        assert done.returncode == expect, f"tw {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


class SimulatorProcess:
    """``tw provider serve acme --port 0 --store FILE`` as a long-lived child; its request log goes to a file."""

    def __init__(self, folder: Path, *, seed: int = 0, max_attempts: int | None = None) -> None:
        self.folder = folder
        self.store = folder / "sim-acme.db"
        self.log_path = folder / "simulator.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [*TW, "--providers", str(SAMPLE_PROVIDERS), "--json", "provider", "serve", "acme", "--port", "0",
             "--store", str(self.store), "--no-faults", "--seed", str(seed)],
            cwd=folder, env=tw_env(), stdout=subprocess.PIPE, stderr=self._log, text=True,
        )
        line = self._first_line(timeout=30)
        self.url: str = json.loads(line)["url"]
        # A providers file whose acme base_url is this simulator: what an operator's jobs would read.
        # ``max_attempts``: fewer client retries, so that more transfers end in doubt.
        acme, marker, rest = SAMPLE_PROVIDERS.read_text().partition("[providers.betsul]")
        acme, count = re.subn(r'(?m)^base_url = "[^"]*"', f'base_url = "{self.url}"', acme)
        assert count == 1 and marker, "could not point the acme base_url of the sample providers file at the simulator"
        if max_attempts is not None:
            acme, count = re.subn(r"(?m)^max_attempts = \d+", f"max_attempts = {max_attempts}", acme)
            assert count == 1, "no max_attempts in the acme section of the sample providers file"
        self.providers_file = folder / "providers.toml"
        self.providers_file.write_text(acme + marker + rest)

    def _first_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.stop()
                raise AssertionError(f"the simulator printed no URL in {timeout} s: {self.log_path.read_text()[-2000:]}")
        line = self.process.stdout.readline()
        assert line, f"the simulator exited at start (code {self.process.poll()}): {self.log_path.read_text()[-2000:]}"
        return line

    def client(self) -> HttpProvider:
        """A signed HTTP client of this simulator (secrets must be in this process's environment)."""
        config = load_providers(self.providers_file)["acme"]
        return HttpProvider(config, base_url=self.url)

    def set_faults(self, rules: list[str], seed: int = 0) -> None:
        with SimulatorAdmin(self.client()) as admin:
            admin.set_faults(rules, seed=seed)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


# -- the simulator's request log ------------------------------------------------------------------

_LINE = re.compile(
    r"acme (?P<method>GET|POST) (?P<path>\S+) -> (?P<status>.+?) in \d+ us "
    r"\(endpoint (?P<endpoint>\S+), key \S+, request \S+, fault (?P<fault>\S+), client"
)


@dataclass
class RequestLog:
    """What the simulator logged: one (endpoint, fault, status) per request."""

    requests: list[tuple[str, str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> RequestLog:
        found = cls()
        for line in path.read_text(errors="replace").splitlines():
            match = _LINE.search(line)
            if match:
                found.requests.append((match["endpoint"].rstrip(","), match["fault"].rstrip(","), match["status"]))
        return found

    def faults(self, endpoints: set[str]) -> Counter:
        """Injected faults by kind on these endpoints."""
        return Counter(fault for endpoint, fault, _ in self.requests if endpoint in endpoints and fault != "None")

    def count(self, endpoint: str) -> int:
        return sum(1 for e, _, _ in self.requests if e == endpoint)

    def transfer_applications(self) -> tuple[int, int]:
        """(transfers certainly applied by a request, requests whose client vanished mid-answer)."""
        applied = gone = 0
        for endpoint, _, status in self.requests:
            if endpoint not in ("transfer_in", "transfer_out"):
                continue
            if status == "201" or status == "lost (applied, would have been 201)":
                applied += 1
            elif status == "client gone":
                gone += 1
        return applied, gone


# -- the audit --------------------------------------------------------------------------------------


@dataclass
class Audit:
    """Figures and problems found; ``problems`` empty means nothing lost, nothing doubled."""

    players: int = 0
    sessions: Counter = field(default_factory=Counter)
    transfers: Counter = field(default_factory=Counter)
    resolved_after_doubt: int = 0
    sim_transfers: Counter = field(default_factory=Counter)
    rounds: int = 0
    funding_minor: int = 0
    problems: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "players": self.players, "sessions": dict(self.sessions), "transfers": dict(self.transfers),
            "resolved_after_doubt": self.resolved_after_doubt, "sim_transfers": dict(self.sim_transfers),
            "rounds": self.rounds, "funding_minor": self.funding_minor,
        }


def _sim_store(path: Path) -> tuple[list[tuple], dict[str, int]]:
    """(transfers rows, balance by player) straight from the simulator's SQLite file."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        transfers = connection.execute(
            "SELECT transfer_id, player_id, direction, amount_minor, state FROM transfers"
        ).fetchall()
        balances = dict(connection.execute("SELECT player_id, balance_minor FROM wallets").fetchall())
    connection.close()
    return transfers, balances


def _round_nets(client: HttpProvider, player: str) -> tuple[int, int]:
    """(sum of win + refund - bet, number of rounds) of a player, every page of the rounds endpoint."""
    since = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    seen: set[str] = set()
    net = 0
    while True:
        page = [r for r in client.rounds(player, since, limit=1000) if r.round_id not in seen]
        if not page:
            return net, len(seen)
        for item in page:
            seen.add(item.round_id)
            net += item.win.amount_minor + item.refund.amount_minor - item.bet.amount_minor
        since = page[-1].ended_at


def audit(database_url: str, simulator: SimulatorProcess, *, funding_minor: int | None = None) -> Audit:
    """Every player: main + locked + game balance == deposits + round nets; every transfer agrees with the simulator.

    ``funding_minor``: if given, every player's deposits must be either that or
    nothing (a run killed before it funded the player) — never twice.
    """
    result = Audit()
    problems = result.problems
    database = open_database(database_url)
    try:
        with database.engine.connect() as connection:
            players = [r.id for r in connection.execute(select(Player.__table__.c.id))]
            accounts = Account.__table__
            postings = Posting.__table__
            entries = Entry.__table__
            # Balances from the postings themselves (the ledger check compares them with the cached column).
            held: dict[str, int] = defaultdict(int)
            funded: dict[str, int] = defaultdict(int)
            rows = connection.execute(
                select(accounts.c.player_id, accounts.c.kind, entries.c.kind.label("entry_kind"), postings.c.amount_minor)
                .select_from(postings.join(accounts, postings.c.account_id == accounts.c.id)
                             .join(entries, postings.c.entry_id == entries.c.id))
                .where(accounts.c.player_id.is_not(None))
            ).all()
            for row in rows:
                held[row.player_id] += row.amount_minor
                if row.entry_kind in ("deposit", "withdraw"):
                    funded[row.player_id] += row.amount_minor
            sessions = {r.id: r for r in connection.execute(select(GameSession.__table__))}
            transfers = connection.execute(select(Transfer.__table__)).all()
    finally:
        database.dispose()

    result.players = len(players)
    result.funding_minor = sum(funded.values())
    for row in sessions.values():
        result.sessions[row.status] += 1
        if row.status not in FINAL:
            problems.append(f"session {row.id} of {row.player_id} is still {row.status}")
    for row in transfers:
        result.transfers[f"{row.direction}:{row.status}"] += 1
        result.resolved_after_doubt += row.status in ("completed", "refused") and row.attempts > 0
        if row.status in ("pending", "in_doubt"):
            problems.append(f"transfer {row.id} is still {row.status}")

    sim_rows, sim_balances = _sim_store(simulator.store)
    sim_by_id = {r[0]: r for r in sim_rows}
    for transfer_id, _, direction, _, state in sim_rows:
        result.sim_transfers[f"{direction}:{state}"] += 1
    ours = {t.id: t for t in transfers}

    # Every transfer the simulator holds is one we know, and both sides agree on what it did.
    for transfer_id, player, direction, amount, state in sim_rows:
        mine = ours.get(transfer_id)
        if mine is None:
            problems.append(f"simulator holds {direction} {transfer_id} ({state} {amount}) unknown to the ledger")
            continue
        if state == "APPLIED" and mine.status != "completed":
            problems.append(f"simulator applied {direction} {transfer_id} ({amount}) but the ledger says {mine.status}")
        if state == "APPLIED" and mine.game_amount_minor is not None and mine.game_amount_minor != amount:
            problems.append(f"{transfer_id}: simulator moved {amount}, ledger recorded {mine.game_amount_minor}")
        if mine.player_id != player:
            problems.append(f"{transfer_id}: simulator player {player}, ledger player {mine.player_id}")
    for mine in transfers:
        theirs = sim_by_id.get(mine.id)
        if mine.status == "completed" and (theirs is None or theirs[4] != "APPLIED"):
            problems.append(f"ledger completed {mine.direction} {mine.id} but the simulator has {theirs and theirs[4]}")

    # Per session: the transfer-in applied exactly once iff the session got past OPENING, and what came
    # back out is what the session recorded.
    applied_in: Counter = Counter()
    applied_out: dict[str, int] = defaultdict(int)
    for mine in transfers:
        theirs = sim_by_id.get(mine.id)
        if theirs is not None and theirs[4] == "APPLIED":
            if mine.direction == "IN":
                applied_in[mine.session_id] += 1
            else:
                applied_out[mine.session_id] += theirs[3]
    for session in sessions.values():
        expected_in = 0 if session.status == "failed" else 1
        if applied_in[session.id] != expected_in:
            problems.append(f"session {session.id} ({session.status}): transfer-in applied {applied_in[session.id]} time(s)")
        if session.status == "closed" and applied_out[session.id] != (session.game_amount_out_minor or 0):
            problems.append(f"session {session.id}: simulator paid out {applied_out[session.id]}, "
                            f"session recorded {session.game_amount_out_minor}")

    # The money of every player, to the cent.
    open_players = {s.player_id for s in sessions.values() if s.status not in FINAL}
    with simulator.client() as client:
        for player in players:
            at_sim = client.balance(player).amount_minor
            if at_sim != sim_balances.get(player, 0):
                problems.append(f"{player}: simulator balance over HTTP {at_sim} != store {sim_balances.get(player, 0)}")
            net, count = _round_nets(client, player)
            result.rounds += count
            total = held[player] + at_sim
            expected = funded[player] + net
            if total != expected:
                problems.append(f"{player}: main+locked+simulator = {total} but deposits + round nets = {expected} "
                                f"({'lost' if total < expected else 'doubled'} {abs(total - expected)})")
            if player not in open_players and at_sim != 0:
                problems.append(f"{player}: every session is final but {at_sim} is left at the simulator")
            if funding_minor is not None and funded[player] not in (0, funding_minor):
                problems.append(f"{player}: deposits {funded[player]}, expected 0 or {funding_minor}")
    return result
