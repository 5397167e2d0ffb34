"""The load generator behind ``tw simulate``: seeded sessions through the real HTTP client.

A run funds fresh players, then for each session: opens it (transfer-in over
HTTP, signed, retried), plays seeded rounds at the simulator and mirrors them
into the session, and closes it (transfer-out) — except a share that is left
to time out. The timeout and in-doubt jobs run every simulated minute during the
run, and after it until nothing of the run is left unfinished. Then it verifies
the scenario: for every player, main wallet + locked + game balance at the
simulator equals the funding plus what the simulator's rounds paid, to the cent;
and the ledger check is clean.

**One clock per run** (``clock.RunClock``): sessions open at ``start``, then every
``session_gap_s`` (or at the instants of ``open_at``); a session plays for
``rounds x round_s`` simulated seconds; time jumps only to the next due timeout or
retry. The in-process simulator takes its time from the same clock, so its
transfers and rounds fall inside the sessions that made them. The clock never
passes the wall clock of the run's start: a plan that does not fit between
``start`` and now is refused before anything is written, and a run without a
start begins far enough in the past. A simulator named by ``url`` keeps its own
(wall) clock: our database is still consistent, its own store is not ours to set.
Ledger entries and player rows carry their booking time (the wall clock).

The jobs it runs sweep the whole database, not only this run's sessions, as the
scheduled jobs would. Every id a run creates carries its run id (players, keys,
the in-process simulator's round ids), so a second run on the same database
never collides with the first.

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
from typing import TYPE_CHECKING, Any, Callable

from transfer_wallet import migrations
from transfer_wallet.config import ProviderConfig
from transfer_wallet.db import Database
from transfer_wallet.errors import InvalidStateError, OutcomeUnknownError, ProviderError, TransferWalletError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import utc_now
from transfer_wallet.money import Money, currency
from transfer_wallet.play import PlayMirror
from transfer_wallet.sessions import SessionManager, SessionPolicy, SessionView
from transfer_wallet.simulator.clock import RunClock, check_fits, next_due, tail_s
from transfer_wallet.wallet import Wallet

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.simulator.admin import SimulatorAdmin

#: Resolution passes after the run; each jumps the clock to the next due timeout or retry.
RESOLUTION_PASSES = 60
#: Sessions per ``SessionManager.list`` call (its own cap); the run pages through all of its sessions.
PAGE_SIZE = 10_000
#: The jobs run whenever this much simulated time has passed (the scheduler's sweep interval).
SWEEP_EVERY_S = 60
#: Progress callback: (step name, done, total).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    """What to simulate, and when (``start`` / ``open_at`` in the past; see the module docstring)."""

    players: int = 10
    sessions: int = 50
    seed: int = 1
    faults: tuple[str, ...] = ()
    timeout_share: float = 0.1
    rounds_per_session: int = 10
    funding: str = "500.00"
    url: str | None = None
    report_out: Path | None = None
    start: dt.datetime | None = None
    open_at: tuple[dt.datetime, ...] = ()
    session_gap_s: int = 30
    round_s: int = 6
    timeout_last: int = 0

    def check(self) -> None:
        """``ValidationError`` for a plan out of bounds (before anything is written)."""
        from transfer_wallet.errors import ValidationError

        if not 1 <= self.players <= 100_000:
            raise ValidationError("--players must be 1..100000")
        if not 1 <= self.sessions <= 1_000_000:
            raise ValidationError("--sessions must be 1..1000000")
        if not 0 <= self.timeout_share <= 1:
            raise ValidationError("--timeout-share must be between 0 and 1")
        if not 0 <= self.rounds_per_session <= 1000:
            raise ValidationError("--rounds must be 0..1000")
        if not 0 <= self.session_gap_s <= 86_400 or not 0 <= self.round_s <= 3600:
            raise ValidationError("--gap must be 0..86400 s and the round time 0..3600 s")
        if self.open_at and (len(self.open_at) != self.sessions or list(self.open_at) != sorted(self.open_at)):
            raise ValidationError("open_at must hold one instant per session, in order")
        if self.start is not None and self.start.tzinfo is None:
            raise ValidationError("--start needs a UTC offset, e.g. 2026-11-24T00:00:00+00:00")

    def needed_s(self, config: ProviderConfig) -> int:
        """Simulated seconds from the first opening to the last resolution, without forced waits."""
        span = (self.open_at[-1] - self.open_at[0]).total_seconds() if self.open_at else \
            (self.sessions - 1) * self.session_gap_s
        return int(span) + tail_s(self.rounds_per_session, self.round_s, config.idle_timeout_s)

    def first_instant(self, config: ProviderConfig, now: dt.datetime) -> dt.datetime:
        """When the run starts: ``open_at[0]``, ``start``, or far enough before ``now`` for the plan.

        Without a start, room is left for the waits of sessions left to time out too
        (each may hold its player for an idle timeout), so the run ends before now.
        """
        if self.open_at:
            return self.open_at[0]
        if self.start is not None:
            return self.start
        waits = int(self.sessions * self.timeout_share + 1) * (config.idle_timeout_s + 1)
        return (now - dt.timedelta(seconds=self.needed_s(config) + waits)).replace(microsecond=0)

@dataclass
class SimulationSummary:
    """What happened, for people and for ``--json``; ``session_ids`` are the run's sessions."""

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
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    session_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (amounts as decimal strings in major units, times ISO 8601)."""
        ccy = currency(self.currency)
        return {
            "provider": self.provider, "run_id": self.run_id, "sessions": self.sessions,
            "by_status": dict(sorted(self.by_status.items())), "currency": ccy.code,
            "moved_in": Money(self.moved_in, ccy).format(), "moved_out": Money(self.moved_out, ccy).format(),
            "rounds": self.rounds, "in_doubt": self.in_doubt, "stuck": self.stuck,
            "failures": dict(sorted(self.failures.items())), "discrepancies": self.discrepancies,
            "resolution_passes": self.resolution_passes, "conserved": self.conserved,
            "mismatches": self.mismatches[:20], "ledger_clean": self.ledger_clean,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


def ensure_throwaway_secrets(config: ProviderConfig) -> list[str]:
    """Set a random secret for every key whose variable is unset; returns the names set."""
    created = []
    for key in config.keys:
        if not os.environ.get(key.secret_env):
            os.environ[key.secret_env] = secrets.token_hex(32)
            created.append(key.secret_env)
    return created


def prepare_clock(config: ProviderConfig, plan: SimulationPlan, *, now: dt.datetime | None = None) -> RunClock:
    """The run's clock, limited to ``now``; ``ValidationError`` if the plan would run past now."""
    plan.check()
    now = now or utc_now()
    first = plan.first_instant(config, now)
    check_fits(first, plan.needed_s(config), now)
    return RunClock(first, limit=now)


def run_simulation(db: Database, config: ProviderConfig, plan: SimulationPlan, *, store_dir: Path | None = None,
                   progress: Progress | None = None, clock: RunClock | None = None,
                   run_id: str | None = None) -> SimulationSummary:
    """Run ``plan`` against ``config``'s provider; see the module docstring.

    ``store_dir`` keeps the in-process simulator's store (``sim-NAME.db``); ``progress``
    is told of each session. A caller that runs its own simulator on the run's clock
    (the demo) passes ``plan.url`` and that ``clock``; ``run_id`` names the run's ids.
    """
    from transfer_wallet.simulator.admin import SimulatorAdmin
    from transfer_wallet.simulator.faults import FaultPlan, parse_rule
    from transfer_wallet.simulator.server import SimulatorServer

    if clock is None:
        clock = prepare_clock(config, plan)  # a bad plan or start fails before anything is written
    else:
        plan.check()
    rules = [parse_rule(text) for text in plan.faults]
    migrations.upgrade(db)
    run_id = run_id or uuid.uuid4().hex[:8]
    server = None
    if plan.url is None:
        ensure_throwaway_secrets(config)
        folder = store_dir or Path(tempfile.mkdtemp(prefix="tw-sim-"))
        server = SimulatorServer(config, folder / f"sim-{config.name}.db", faults=FaultPlan(rules, seed=plan.seed),
                                 seed=plan.seed, now=clock, round_prefix=f"{config.name}-{run_id}")
        server.start()
    # A fast client: small backoff so the run does not sleep for minutes; same semantics.
    client_config = dataclasses.replace(config, max_retry_s=min(config.max_retry_s, 3.0))
    base_url = plan.url if plan.url is not None else server.url  # type: ignore[union-attr]
    admin = SimulatorAdmin.connect(client_config, base_url=base_url, backoff_initial_s=0.01, backoff_max_s=0.1)
    try:
        if plan.url is not None and rules:
            admin.set_faults(list(plan.faults), seed=plan.seed)
        return _run(db, config, admin, plan, clock, run_id, progress)
    finally:
        admin.close()
        if server is not None:
            server.stop()


@dataclass
class _Run:
    """What the steps of one run share."""

    manager: SessionManager
    mirror: PlayMirror
    clock: RunClock
    policy: SessionPolicy
    summary: SimulationSummary
    rng: random.Random
    last_sweep: dt.datetime


def _run(db: Database, config: ProviderConfig, admin: SimulatorAdmin, plan: SimulationPlan, clock: RunClock,
         run_id: str, progress: Progress | None) -> SimulationSummary:
    policy = SessionPolicy.from_config(config)
    manager = SessionManager(db, {config.name: admin.provider}, {config.name: policy}, clock=clock)
    summary = SimulationSummary(provider=config.name, run_id=run_id, currency=config.currency, started_at=clock())
    run = _Run(manager, PlayMirror(db), clock, policy, summary, random.Random(plan.seed), clock())
    wallet = Wallet(db)
    players = [f"sim{run_id}-{n}" for n in range(plan.players)]
    funding = Money.parse(plan.funding, config.currency)
    for player in players:
        wallet.create_player(player, config.currency)
        wallet.deposit(player, funding, reference=f"sim-{run_id}-fund-{player}")
    busy: dict[str, str] = {}  # player -> their session that is not final yet
    opens = plan.open_at or tuple(clock.start + dt.timedelta(seconds=n * plan.session_gap_s)
                                  for n in range(plan.sessions))
    for number, when in enumerate(opens):
        clock.advance_to(when)
        _sweep_if_due(run)
        _free_players(run, busy, force=len(busy) >= len(players))
        _one_session(run, admin, plan, number, players, busy, funding)
        if progress is not None:
            progress("sessions", number + 1, plan.sessions)
    _resolve(db, run)
    summary.ended_at = clock()
    _verify(db, admin.provider, manager, players, funding, summary.started_at or clock(), summary)
    if plan.report_out is not None:
        plan.report_out.write_bytes(admin.provider.transfer_report(summary.started_at.date()))  # type: ignore[union-attr]
    return summary


def _one_session(run: _Run, admin: SimulatorAdmin, plan: SimulationPlan, number: int, players: list[str],
                 busy: dict[str, str], funding: Money) -> None:
    """Open one session for a free player, play it, and close it (or leave it to time out)."""
    summary, rng, config_name = run.summary, run.rng, run.summary.provider
    player = rng.choice([p for p in players if p not in busy] or players)
    amount = Money(rng.randint(1, max(1, funding.amount_minor // 5)), funding.currency)
    try:
        view = run.manager.open_session(player, config_name, amount, key=f"sim-{summary.run_id}-open-{number}")
    except (InvalidStateError, TransferWalletError) as error:
        summary.failures[f"open:{type(error).__name__}"] += 1
        return
    summary.session_ids.append(view.id)
    busy[player] = view.id
    if view.status != "active":
        summary.failures[f"open:{view.display_status}"] += 1
        return
    run.clock.advance(1)
    summary.rounds += _play(admin, run, view.id, player, plan.rounds_per_session)
    run.clock.advance(plan.rounds_per_session * plan.round_s)
    if rng.random() < plan.timeout_share or number >= plan.sessions - plan.timeout_last:
        return  # left to time out
    try:
        closed = run.manager.close_session(view.id, key=f"sim-{summary.run_id}-close-{number}")
    except TransferWalletError as error:
        summary.failures[f"close:{type(error).__name__}"] += 1
        return
    if closed.status != "closed":
        summary.failures[f"close:{closed.display_status}"] += 1


def _sweep_if_due(run: _Run) -> None:
    """Run the in-doubt and timeout jobs once per ``SWEEP_EVERY_S`` of simulated time, as the scheduler would."""
    if (run.clock() - run.last_sweep).total_seconds() >= SWEEP_EVERY_S:
        run.manager.resolve_in_doubt()
        run.manager.expire_sessions()
        run.last_sweep = run.clock()


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


def _free_players(run: _Run, busy: dict[str, str], *, force: bool) -> None:
    """Forget players whose session is final; when all are busy, let time pass to the next timeout and sweep."""
    if force:
        run.clock.advance(max(run.policy.idle_timeout_s, run.policy.retry_base_s) + 1)
        run.manager.resolve_in_doubt()
        run.manager.expire_sessions()
        run.last_sweep = run.clock()
    for player, session_id in list(busy.items()):
        if run.manager.get(session_id).status in ("closed", "failed"):
            del busy[player]


def _play(admin: SimulatorAdmin, run: _Run, session_id: str, player: str, rounds: int) -> int:
    """Play at the simulator and mirror each round; a lost answer leaves a gap the close will flag."""
    if rounds <= 0:
        return 0
    try:
        played = admin.play(player, rounds, seed=run.rng.randrange(2**31))
    except (ProviderError, OutcomeUnknownError) as error:
        run.summary.failures[f"play:{type(error).__name__}"] += 1
        return 0
    for item in played:
        try:
            run.mirror.mirror_round(session_id, item, now=run.clock())
        except TransferWalletError as error:  # not mirrored: the close flags the difference
            run.summary.failures[f"mirror:{type(error).__name__}"] += 1
    return len(played)


def _resolve(db: Database, run: _Run) -> None:
    """Let time pass to the next due timeout or retry and run the jobs, until the run's sessions are final.

    Stops early when the clock reaches now: what is still open then is a session
    running at this moment, left to the scheduled jobs.
    """
    wanted = set(run.summary.session_ids)
    for number in range(RESOLUTION_PASSES):
        pending = [v.id for v in run_sessions(run.manager, wanted) if v.status not in ("closed", "failed")]
        if not pending or run.clock.at_limit:
            break
        run.summary.resolution_passes = number + 1
        due = next_due(db, pending, run.clock())
        run.clock.advance_to(max(due, run.clock() + dt.timedelta(seconds=1)))
        run.manager.resolve_in_doubt()
        run.manager.expire_sessions()


def _verify(db: Database, client: Any, manager: SessionManager, players: list[str], funding: Money,
            start: dt.datetime, summary: SimulationSummary) -> None:
    wanted = set(summary.session_ids)
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
    from transfer_wallet.discrepancies import count_for_sessions

    return count_for_sessions(db, session_ids)
