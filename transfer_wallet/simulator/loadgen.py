"""The load generator behind ``tw simulate``: seeded sessions through the real HTTP client.

A run funds fresh players, then for each session: opens it (transfer-in over
HTTP, signed, retried), plays seeded rounds at the simulator and mirrors them
into the session, and closes it (transfer-out) — except a share that is left
to time out. Then it lets the timeout and in-doubt jobs run (advancing a
simulated clock past every backoff) until nothing is in doubt, and verifies the
scenario: for every player, main wallet + locked + game balance at the
simulator equals the funding plus what the simulator's rounds paid, to the
cent; and the ledger check is clean.

The jobs it runs during and after the run (timeouts, in-doubt) sweep the whole
database, not only this run's sessions, as the scheduled jobs would.

The simulator is started in-process on a loopback port with its own SQLite
store, unless ``url`` names one already running (``tw provider serve``). When it
starts its own simulator and the key secrets are not set, the run generates
throwaway secrets for itself (both ends are this process; nothing is stored).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import secrets
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfer_wallet import migrations
from transfer_wallet.config import ProviderConfig
from transfer_wallet.db import Database
from transfer_wallet.errors import InvalidStateError, OutcomeUnknownError, ProviderError, TransferWalletError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import utc_now
from transfer_wallet.money import Money, currency
from transfer_wallet.play import PlayMirror
from transfer_wallet.sessions import SessionManager, SessionPolicy, SessionView
from transfer_wallet.wallet import Wallet

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.simulator.admin import SimulatorAdmin

#: Resolution passes after the run; each advances the simulated clock past every backoff.
RESOLUTION_PASSES = 60
#: Sessions per ``SessionManager.list`` call (its own cap); the run pages through all of its sessions.
PAGE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    """What to simulate."""

    players: int = 10
    sessions: int = 50
    seed: int = 1
    faults: tuple[str, ...] = ()
    timeout_share: float = 0.1
    rounds_per_session: int = 10
    funding: str = "500.00"
    url: str | None = None
    report_out: Path | None = None

    def check(self) -> None:
        from transfer_wallet.errors import ValidationError

        if not 1 <= self.players <= 100_000:
            raise ValidationError("--players must be 1..100000")
        if not 1 <= self.sessions <= 1_000_000:
            raise ValidationError("--sessions must be 1..1000000")
        if not 0 <= self.timeout_share <= 1:
            raise ValidationError("--timeout-share must be between 0 and 1")
        if not 0 <= self.rounds_per_session <= 1000:
            raise ValidationError("--rounds must be 0..1000")


@dataclass
class SimulationSummary:
    """What happened, for people and for ``--json``."""

    provider: str
    run_id: str
    sessions: int = 0
    by_status: Counter = field(default_factory=Counter)
    moved_in: int = 0
    moved_out: int = 0
    rounds: int = 0
    in_doubt: int = 0
    stuck: int = 0
    failures: Counter = field(default_factory=Counter)
    discrepancies: int = 0
    resolution_passes: int = 0
    conserved: bool = False
    mismatches: list[str] = field(default_factory=list)
    ledger_clean: bool = False
    currency: str = ""

    def as_dict(self) -> dict[str, Any]:
        ccy = currency(self.currency)
        return {
            "provider": self.provider, "run_id": self.run_id, "sessions": self.sessions,
            "by_status": dict(sorted(self.by_status.items())), "currency": ccy.code,
            "moved_in": Money(self.moved_in, ccy).format(), "moved_out": Money(self.moved_out, ccy).format(),
            "rounds": self.rounds, "in_doubt": self.in_doubt, "stuck": self.stuck,
            "failures": dict(sorted(self.failures.items())), "discrepancies": self.discrepancies,
            "resolution_passes": self.resolution_passes, "conserved": self.conserved,
            "mismatches": self.mismatches[:20], "ledger_clean": self.ledger_clean,
        }


def ensure_throwaway_secrets(config: ProviderConfig) -> list[str]:
    """Set a random secret for every key whose variable is unset; returns the names set."""
    created = []
    for key in config.keys:
        if not os.environ.get(key.secret_env):
            os.environ[key.secret_env] = secrets.token_hex(32)
            created.append(key.secret_env)
    return created


def run_simulation(db: Database, config: ProviderConfig, plan: SimulationPlan, *, store_dir: Path | None = None) -> SimulationSummary:
    """Run ``plan`` against ``config``'s provider; see the module docstring."""
    from transfer_wallet.simulator.admin import SimulatorAdmin
    from transfer_wallet.simulator.faults import FaultPlan, parse_rule
    from transfer_wallet.simulator.server import SimulatorServer

    plan.check()
    rules = [parse_rule(text) for text in plan.faults]  # bad rules fail before anything is written
    migrations.upgrade(db)
    server = None
    if plan.url is None:
        ensure_throwaway_secrets(config)
        folder = store_dir or Path(tempfile.mkdtemp(prefix="tw-sim-"))
        server = SimulatorServer(config, folder / f"sim-{config.name}.db", faults=FaultPlan(rules, seed=plan.seed), seed=plan.seed)
        server.start()
    # A fast client: small backoff so the run does not sleep for minutes; same semantics.
    client_config = dataclasses.replace(config, max_retry_s=min(config.max_retry_s, 3.0))
    base_url = plan.url if plan.url is not None else server.url  # type: ignore[union-attr]
    admin = SimulatorAdmin.connect(client_config, base_url=base_url, backoff_initial_s=0.01, backoff_max_s=0.1)
    try:
        if plan.url is not None and rules:
            admin.set_faults(list(plan.faults), seed=plan.seed)
        return _run(db, config, admin, plan)
    finally:
        admin.close()
        if server is not None:
            server.stop()


def _run(db: Database, config: ProviderConfig, admin: SimulatorAdmin, plan: SimulationPlan) -> SimulationSummary:
    client = admin.provider
    rng = random.Random(plan.seed)
    run_id = uuid.uuid4().hex[:8]
    clock = {"now": utc_now()}
    policy = SessionPolicy.from_config(config)
    manager = SessionManager(db, {config.name: client}, {config.name: policy}, clock=lambda: clock["now"])
    mirror = PlayMirror(db)
    wallet = Wallet(db)
    players = [f"sim{run_id}-{n}" for n in range(plan.players)]
    funding = Money.parse(plan.funding, config.currency)
    start = clock["now"]
    summary = SimulationSummary(provider=config.name, run_id=run_id, currency=config.currency)
    for player in players:
        wallet.create_player(player, config.currency)
        wallet.deposit(player, funding, reference=f"sim-{run_id}-fund-{player}")

    session_ids: list[str] = []
    busy: dict[str, str] = {}  # player -> their session that is not final yet
    for number in range(plan.sessions):
        clock["now"] += dt.timedelta(seconds=1)
        _free_players(manager, busy, clock, policy, force=len(busy) >= len(players))
        player = rng.choice([p for p in players if p not in busy] or players)
        amount = Money(rng.randint(1, max(1, funding.amount_minor // 5)), funding.currency)
        try:
            view = manager.open_session(player, config.name, amount, key=f"sim-{run_id}-open-{number}")
        except (InvalidStateError, TransferWalletError) as error:
            summary.failures[f"open:{type(error).__name__}"] += 1
            continue
        session_ids.append(view.id)
        busy[player] = view.id
        if view.status != "active":
            summary.failures[f"open:{view.display_status}"] += 1
            continue
        summary.rounds += _play(admin, mirror, view.id, player, plan.rounds_per_session, rng, summary)
        if rng.random() < plan.timeout_share:
            continue  # left to time out
        try:
            closed = manager.close_session(view.id, key=f"sim-{run_id}-close-{number}")
        except TransferWalletError as error:
            summary.failures[f"close:{type(error).__name__}"] += 1
            continue
        if closed.status != "closed":
            summary.failures[f"close:{closed.display_status}"] += 1

    _resolve(manager, clock, policy, summary, session_ids)
    _verify(db, client, manager, players, funding, start, summary, session_ids)
    if plan.report_out is not None:
        plan.report_out.write_bytes(client.transfer_report(start.date()))
    return summary


def run_sessions(manager: SessionManager, wanted: set[str], *, page_size: int = PAGE_SIZE) -> list[SessionView]:
    """The sessions whose ids are in ``wanted``, paging through ``SessionManager.list`` (newest first).

    Stops at a short page or once every wanted session was seen, so a run of any size
    is verified whole, not only its newest ``page_size`` sessions.
    """
    found: list[SessionView] = []
    offset = 0
    while len(found) < len(wanted):
        # The first page needs no offset; later pages use SessionManager.list(offset=...).
        page = manager.list(limit=page_size, offset=offset) if offset else manager.list(limit=page_size)
        found += [v for v in page if v.id in wanted]
        if len(page) < page_size:
            break
        offset += page_size
    return found


def _free_players(manager: SessionManager, busy: dict[str, str], clock: dict[str, dt.datetime],
                  policy: SessionPolicy, *, force: bool) -> None:
    """Forget players whose session is final; when all are busy, let the jobs run past the timeouts."""
    if force:
        clock["now"] += dt.timedelta(seconds=max(policy.idle_timeout_s, policy.retry_base_s) + 1)
        manager.resolve_in_doubt()
        manager.expire_sessions()
    for player, session_id in list(busy.items()):
        if manager.get(session_id).status in ("closed", "failed"):
            del busy[player]


def _play(admin: SimulatorAdmin, mirror: PlayMirror, session_id: str, player: str, rounds: int, rng: random.Random,
          summary: SimulationSummary) -> int:
    """Play at the simulator and mirror each round; a lost answer leaves a gap the close will flag."""
    if rounds <= 0:
        return 0
    try:
        played = admin.play(player, rounds, seed=rng.randrange(2**31))
    except (ProviderError, OutcomeUnknownError) as error:
        summary.failures[f"play:{type(error).__name__}"] += 1
        return 0
    for item in played:
        mirror.mirror_round(session_id, item)
    return len(played)


def _resolve(manager: SessionManager, clock: dict[str, dt.datetime], policy: SessionPolicy,
             summary: SimulationSummary, session_ids: list[str]) -> None:
    """Let time pass and the jobs run until every session is final (or the passes run out)."""
    step = dt.timedelta(seconds=max(policy.retry_max_s, policy.idle_timeout_s, policy.max_session_s) + 1)
    wanted = set(session_ids)
    for number in range(RESOLUTION_PASSES):
        pending = [v for v in run_sessions(manager, wanted) if v.status not in ("closed", "failed")]
        if not pending:
            break
        summary.resolution_passes = number + 1
        clock["now"] += step
        manager.resolve_in_doubt()
        manager.expire_sessions()


def _verify(db: Database, client: Any, manager: SessionManager, players: list[str], funding: Money,
            start: dt.datetime, summary: SimulationSummary, session_ids: list[str]) -> None:
    wanted = set(session_ids)
    views = run_sessions(manager, wanted)
    summary.sessions = len(views)
    for view in views:
        summary.by_status[view.status] += 1
        summary.in_doubt += view.in_doubt
        summary.stuck += view.stuck
        if view.status != "failed":
            summary.moved_in += view.amount_in.amount_minor
        if view.amount_out is not None:
            summary.moved_out += view.amount_out.amount_minor
    wallet = Wallet(db)
    for player in players:
        net = sum(r.net.amount_minor for r in _all_rounds(client, player, start))
        balance = wallet.balance(player)
        at_provider = client.balance(player).amount_minor
        held = balance.available.amount_minor + balance.locked.amount_minor + at_provider
        in_doubt = [v for v in views if v.player_id == player and v.in_doubt]
        if held != funding.amount_minor + net and not in_doubt:
            summary.mismatches.append(
                f"{player}: main+locked+provider = {held}, funding+rounds = {funding.amount_minor + net}"
            )
    summary.conserved = not summary.mismatches and summary.in_doubt == 0
    summary.discrepancies = _count_discrepancies(db, wanted)
    summary.ledger_clean = check_ledger(db).clean


def _all_rounds(client: Any, player: str, since: dt.datetime) -> list[Any]:
    found: list[Any] = []
    seen: set[str] = set()
    cursor = since - dt.timedelta(days=1)
    while True:
        page = [r for r in client.rounds(player, cursor, limit=500) if r.round_id not in seen]
        if not page:
            return found
        found += page
        seen.update(r.round_id for r in page)
        cursor = page[-1].ended_at


def _count_discrepancies(db: Database, session_ids: set[str]) -> int:
    from sqlalchemy import select

    from transfer_wallet.models import Discrepancy

    table = Discrepancy.__table__  # type: ignore[attr-defined]
    with db.engine.connect() as connection:
        rows = connection.execute(select(table.c.session_id)).all()
    return sum(1 for r in rows if r.session_id in session_ids)
